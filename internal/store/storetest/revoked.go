package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// isRevokedRefusal reports whether err is PutSignature's refusal of a
// revoked key version (store.RevokedBeforeRecorded).
func isRevokedRefusal(err error) bool {
	return errors.Is(err, errdefs.ErrFailedPrecondition) && errdefs.ReasonOf(err) == errdefs.ReasonKeyRevoked
}

// testPutSignatureRevoked: a record of a revoked version is refused and
// leaves no trace; a change of the key's record before that (a rotation)
// refuses nothing, and keys the store does not hold are not affected.
func testPutSignatureRevoked(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "CreateKey", s.CreateKey(ctx, newKey("k"), ev("key.create")))
	rec := sigRecord(digest("before"), "k", 1)
	must(t, "PutSignature before the revocation", s.PutSignature(ctx, rec, sigEvent(rec)))
	// A change of the key's record that revokes nothing (a rotation): a
	// backend that caches the record must notice it and go on recording.
	must(t, "AddKeyVersion", s.AddKeyVersion(ctx, "k", version("k", 2), ev("key.rotate")))
	for _, v := range []uint32{1, 2} {
		r := sigRecord(digest(fmt.Sprint("rotated", v)), "k", int(v))
		r.KeyVersion = v
		must(t, fmt.Sprintf("PutSignature v%d after the rotation", v), s.PutSignature(ctx, r, sigEvent(r)))
	}
	must(t, "RevokeKeyVersions", errOf(s.RevokeKeyVersions(ctx, "k", store.ReasonKeyCompromise, at(5), ev("key.revoke"))))

	for _, tt := range []struct {
		name    string
		rec     store.SignatureRecord
		refused bool
	}{
		{"revoked version", sigRecord(digest("after"), "k", 2), true},
		{"the other revoked version", func() store.SignatureRecord {
			r := sigRecord(digest("after"), "k", 3)
			r.KeyVersion = 2
			return r
		}(), true},
		{"a key the store does not hold", sigRecord(digest("after"), "unknown", 4), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := len(audit(t, s))
			err := s.PutSignature(ctx, tt.rec, sigEvent(tt.rec))
			switch {
			case tt.refused && !isRevokedRefusal(err):
				t.Fatalf("PutSignature: %v, want a KEY_REVOKED failed precondition", err)
			case !tt.refused && err != nil:
				t.Fatalf("PutSignature: %v", err)
			}
			grew := 1
			if tt.refused {
				grew = 0
			}
			if got := len(audit(t, s)); got != n+grew {
				t.Fatalf("audit log has %d records after the call, want %d", got, n+grew)
			}
		})
	}
	recs, err := s.SignaturesByDigest(ctx, digest("after"))
	must(t, "SignaturesByDigest", err)
	for _, r := range recs {
		if r.KeyName == "k" {
			t.Fatalf("a record of a revoked version was stored: %+v", r)
		}
	}
}

// testSignRacingRevoke: writers record signatures of one key version
// while it is revoked. Every record that was accepted is in the log
// before the revocation's record, and every call after it is refused: a
// revocation is a point in the log that no signature of its version
// follows, whichever commit group a record and the revocation fall in.
func testSignRacingRevoke(t *testing.T, s store.Store) {
	const writers, before, maxEach = 16, 64, 2000
	ctx := context.Background()
	must(t, "CreateKey", s.CreateKey(ctx, newKey("raced"), ev("key.create")))
	base := len(audit(t, s))

	var accepted, refused atomic.Int64
	startRevoke := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range maxEach {
				rec := sigRecord(digest(fmt.Sprintf("raced-%d-%d", w, i)), "raced", i)
				err := s.PutSignature(ctx, rec, sigEvent(rec))
				switch {
				case err == nil:
					if accepted.Add(1) == before {
						once.Do(func() { close(startRevoke) })
					}
				case isRevokedRefusal(err):
					refused.Add(1)
					return
				default:
					errs <- fmt.Errorf("writer %d: PutSignature: %w", w, err)
					return
				}
			}
			errs <- fmt.Errorf("writer %d: %d records accepted and none refused", w, maxEach)
		})
	}
	<-startRevoke
	must(t, "RevokeKeyVersions", errOf(s.RevokeKeyVersions(ctx, "raced", store.ReasonKeyCompromise, at(1), ev("key.revoke"))))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	recs := audit(t, s)[base:]
	signs, revokeAt := 0, -1
	for i, r := range recs {
		switch r.Operation {
		case "key.revoke":
			revokeAt = i
		case "sign":
			if revokeAt >= 0 {
				t.Fatalf("sign record seq %d follows the revocation (seq %d)", r.Seq, recs[revokeAt].Seq)
			}
			signs++
		}
	}
	if revokeAt < 0 {
		t.Fatal("no key.revoke record")
	}
	if int64(signs) != accepted.Load() {
		t.Fatalf("%d sign records, %d calls accepted", signs, accepted.Load())
	}
	if refused.Load() != writers {
		t.Fatalf("%d writers refused, want %d", refused.Load(), writers)
	}
	t.Logf("%d accepted before the revocation, %d writers refused after it", accepted.Load(), refused.Load())
}
