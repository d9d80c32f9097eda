package server

import (
	"errors"
	"strings"
	"sync"
	"testing"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
)

func TestMethodLimits(t *testing.T) {
	const serverLimit = 1 << 20
	tests := []struct {
		method string
		req    any
		ok     bool
	}{
		{signerv1.SignerService_Verify_FullMethodName, &signerv1.VerifyRequest{Org: "acme", SignatureDocument: make([]byte, 60<<10)}, true},
		{signerv1.SignerService_Verify_FullMethodName, &signerv1.VerifyRequest{Org: "acme", SignatureDocument: make([]byte, 65<<10)}, false},
		{signerv1.SkillService_VerifySkill_FullMethodName, &signerv1.VerifySkillRequest{SignatureDocument: make([]byte, 400<<10), FileManifest: map[string]string{"f": strings.Repeat("m", 400<<10)}}, true},
		{signerv1.SkillService_VerifySkill_FullMethodName, &signerv1.VerifySkillRequest{SignatureDocument: make([]byte, 1<<20)}, false},
		{signerv1.SkillService_VerifySkill_FullMethodName, &signerv1.VerifySkillRequest{SignatureDocument: make([]byte, 900<<10)}, true},
		{signerv1.SkillService_SignSkillStream_FullMethodName, &signerv1.SignSkillStreamRequest{Entries: []*signerv1.ManifestEntry{{Path: strings.Repeat("p", 900<<10)}}}, true},
		{signerv1.SignerService_ListTrusted_FullMethodName, &signerv1.ListTrustedRequest{Org: strings.Repeat("o", 65<<10)}, false},
		{signerv1.SkillService_SignSkill_FullMethodName, &signerv1.SignSkillRequest{Domain: strings.Repeat("d", 900<<10)}, true},
		{signerv1.SignerService_Sign_FullMethodName, &signerv1.SignRequest{ArtifactName: strings.Repeat("a", 65<<10)}, false},
	}
	for _, tt := range tests {
		if err := checkRequestSize(tt.method, tt.req, serverLimit); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%t", tt.method, err, tt.ok)
		}
	}
}

// TestInflightBudget: reservations add up per peer, fail beyond the
// budget, shrink, and are given back in full.
func TestInflightBudget(t *testing.T) {
	in := newInflight(3<<20+4<<10, 1<<20)
	var rs []*reservation
	for i := range 3 {
		r := &reservation{in: in, key: "uid:1"}
		if err := r.resize(in.reserve); err != nil {
			t.Fatalf("reservation %d: %v", i, err)
		}
		rs = append(rs, r)
	}
	fourth := &reservation{in: in, key: "uid:1"}
	if err := fourth.resize(in.reserve); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("fourth reservation: %v, want ErrResourceExhausted", err)
	}
	if err := (&reservation{in: in, key: "uid:2"}).resize(in.reserve); err != nil {
		t.Fatalf("another peer: %v", err)
	}
	if err := rs[0].resize(100); err != nil {
		t.Fatal(err)
	}
	if err := fourth.resize(in.reserve); err != nil {
		t.Fatalf("after a request was decoded: %v", err)
	}
	for _, r := range append(rs, fourth) {
		_ = r.resize(0)
	}
	if in.used["uid:1"] != 0 || len(in.used) != 1 {
		t.Fatalf("budget not given back: %v", in.used)
	}
}

// TestReservationAdd: charges and releases from several goroutines add up
// exactly (SignBatch's reader charges each item, its workers give them
// back), a release never takes a call below nothing, and a call that has
// ended can be charged no more.
func TestReservationAdd(t *testing.T) {
	in := newInflight(4<<20, 1<<20)
	r := &reservation{in: in, key: "uid:1"}
	if err := r.resize(in.reserve); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if err := r.add(100); err != nil {
					t.Error(err)
					return
				}
				_ = r.add(-100)
			}
		})
	}
	wg.Wait()
	if r.held != in.reserve || in.used["uid:1"] != in.reserve {
		t.Fatalf("after balanced charges: held %d, peer uses %d, want %d", r.held, in.used["uid:1"], in.reserve)
	}
	if err := r.add(3 << 20); err != nil {
		t.Fatalf("charge within the budget: %v", err)
	}
	if err := r.add(1); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("charge beyond the budget: %v, want ErrResourceExhausted", err)
	}
	if err := r.add(-(8 << 20)); err != nil || r.held != 0 || in.used["uid:1"] != 0 {
		t.Fatalf("release of more than held: %v, held %d, peer uses %d", err, r.held, in.used["uid:1"])
	}
	if err := r.add(100); err != nil {
		t.Fatal(err)
	}
	r.end()
	if err := r.add(100); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("charge after the call ended: %v, want ErrResourceExhausted", err)
	}
	if err := r.add(-100); err != nil {
		t.Fatalf("release after the call ended: %v", err)
	}
	if len(in.used) != 0 {
		t.Fatalf("budget not given back: %v", in.used)
	}
}
