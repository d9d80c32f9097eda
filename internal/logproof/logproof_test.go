package logproof

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/signerd/signerd/internal/testutil/rfc9162"
)

// testLog is a log made with the independent reference implementation and
// a software note key: what this package checks, made by other code.
type testLog struct {
	origin string
	leaves [][]byte
	hashes [][]byte
	signer note.Signer
	vkey   string
}

func newTestLog(t *testing.T, origin string, n int) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{origin: origin, signer: s, vkey: vkey}
	for i := range n {
		l.add(fmt.Sprintf("record %d", i))
	}
	return l
}

func (l *testLog) add(leaf string) {
	l.leaves = append(l.leaves, []byte(leaf))
	l.hashes = append(l.hashes, rfc9162.LeafHash([]byte(leaf)))
}

func (l *testLog) checkpoint(t *testing.T, size int) string {
	t.Helper()
	body := fmt.Sprintf("%s\n%d\n%s\n", l.origin, size, base64.StdEncoding.EncodeToString(rfc9162.Root(l.hashes[:size])))
	signed, err := note.Sign(&note.Note{Text: body}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func (l *testLog) bundle(t *testing.T, index, size int) Bundle {
	return Bundle{Origin: l.origin, Leaf: l.leaves[index], LeafIndex: uint64(index), TreeSize: uint64(size),
		InclusionProof: rfc9162.InclusionProof(l.hashes[:size], index), Checkpoint: l.checkpoint(t, size)}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := Verifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBundleVerify(t *testing.T) {
	l := newTestLog(t, "example.com/log", 13)
	other := newTestLog(t, "example.com/log", 13)
	v := mustVerifier(t, l.vkey)
	// Every leaf of every size verifies.
	for size := 1; size <= 13; size++ {
		for i := range size {
			if _, err := l.bundle(t, i, size).Verify(v); err != nil {
				t.Fatalf("leaf %d of %d: %v", i, size, err)
			}
		}
	}
	tests := []struct {
		name   string
		change func(b *Bundle)
		want   error
	}{
		{"changed leaf", func(b *Bundle) { b.Leaf = append([]byte{}, "record 6"...) }, ErrBundle},
		{"another index", func(b *Bundle) { b.LeafIndex = 4 }, ErrBundle},
		{"index past the tree", func(b *Bundle) { b.LeafIndex = 13 }, ErrBundle},
		{"proof of another leaf", func(b *Bundle) { b.InclusionProof = rfc9162.InclusionProof(l.hashes, 6) }, ErrBundle},
		{"a proof hash changed", func(b *Bundle) { b.InclusionProof[0] = rfc9162.LeafHash(nil) }, ErrBundle},
		{"a proof hash missing", func(b *Bundle) { b.InclusionProof = b.InclusionProof[1:] }, ErrBundle},
		{"short hash", func(b *Bundle) { b.InclusionProof[1] = b.InclusionProof[1][:31] }, ErrBundle},
		{"tree size not the checkpoint's", func(b *Bundle) { b.TreeSize = 12 }, ErrBundle},
		{"origin not the checkpoint's", func(b *Bundle) { b.Origin = "example.org/log" }, ErrBundle},
		{"checkpoint by another key", func(b *Bundle) { b.Checkpoint = other.checkpoint(t, 13) }, ErrCheckpoint},
		{"checkpoint text edited", func(b *Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n13\n", "\n14\n", 1) }, ErrCheckpoint},
		{"no signature", func(b *Bundle) { b.Checkpoint = b.Checkpoint[:strings.Index(b.Checkpoint, "\n\n")+1] }, ErrCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := l.bundle(t, 5, 13)
			tc.change(&b)
			if _, err := b.Verify(v); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseBundle(t *testing.T) {
	good := `{"origin":"o","leaf":"AA==","leaf_index":0,"tree_size":1,"inclusion_proof":[],"checkpoint":"x"}`
	if _, err := ParseBundle([]byte(good)); err != nil {
		t.Fatalf("ParseBundle(good) = %v", err)
	}
	for _, bad := range []string{
		``, `[]`, `{"origin":"o"}`,
		`{"origin":"o","leaf":"AA==","leaf_index":0,"tree_size":1,"inclusion_proof":[],"checkpoint":"x","extra":1}`,
		`{"origin":"o","leaf":"AA==","leaf_index":0,"tree_size":1,"inclusion_proof":[],"checkpoint":"x"} {}`,
		`{"origin":"o","leaf":"not base64!","leaf_index":0,"tree_size":1,"inclusion_proof":[],"checkpoint":"x"}`,
		`{"origin":"o","leaf":"AA==","leaf_index":1,"tree_size":1,"inclusion_proof":[],"checkpoint":"x"}`,
		`{"origin":"o","leaf":"AA==","leaf_index":0,"tree_size":2,"inclusion_proof":["AA=="],"checkpoint":"x"}`,
		`{"origin":"o","leaf":"AA==","leaf_index":-1,"tree_size":2,"inclusion_proof":[],"checkpoint":"x"}`,
	} {
		if _, err := ParseBundle([]byte(bad)); !errors.Is(err, ErrBundle) {
			t.Errorf("ParseBundle(%q) = %v, want ErrBundle", bad, err)
		}
	}
}

func TestParseCheckpoint(t *testing.T) {
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{"o\n0\n" + root + "\n", true},
		{"o\n12\n" + root + "\next one\n", true},
		{"o\n12\n" + root, false},
		{"o\n012\n" + root + "\n", false},
		{"o\n+12\n" + root + "\n", false},
		{"o\n18446744073709551616\n" + root + "\n", false},
		{"\n12\n" + root + "\n", false},
		{"o\n12\n" + root[:40] + "\n", false},
		{"o\n12\n" + root + "\n\n", false},
		{"o\n12\n", false},
	} {
		_, err := ParseCheckpoint(tc.text)
		if (err == nil) != tc.ok {
			t.Errorf("ParseCheckpoint(%q) = %v, want ok %v", tc.text, err, tc.ok)
		}
	}
}

func TestExtends(t *testing.T) {
	l := newTestLog(t, "example.com/log", 20)
	forked := newTestLog(t, "example.com/log", 0)
	forked.signer = l.signer
	for i := range 20 {
		if i == 7 {
			forked.add("a rewritten record")
		} else {
			forked.add(fmt.Sprintf("record %d", i))
		}
	}
	v := mustVerifier(t, l.vkey)
	open := func(lg *testLog, size int) Checkpoint {
		c, err := OpenCheckpoint([]byte(lg.checkpoint(t, size)), v)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fetch := func(lg *testLog) ConsistencyFetcher {
		return func(m, n uint64) ([][]byte, error) {
			return rfc9162.ConsistencyProof(lg.hashes[:n], int(m)), nil
		}
	}
	empty := Checkpoint{Origin: l.origin, Size: 0, Root: rfc9162.Root(nil)}
	tests := []struct {
		name       string
		prev, next Checkpoint
		fetch      ConsistencyFetcher
		want       error
	}{
		{"grows", open(l, 5), open(l, 20), fetch(l), nil},
		{"grows by one", open(l, 19), open(l, 20), fetch(l), nil},
		{"from empty", empty, open(l, 3), fetch(l), nil},
		{"same", open(l, 9), open(l, 9), fetch(l), nil},
		{"rollback", open(l, 9), open(l, 8), fetch(l), ErrRollback},
		{"fork at the same size", open(l, 9), open(forked, 9), fetch(l), ErrFork},
		{"fork past the old size", open(l, 9), open(forked, 12), fetch(forked), ErrNotExtending},
		{"fork hidden with the honest proof", open(l, 9), open(forked, 12), fetch(l), ErrNotExtending},
		{"another origin", open(l, 9), func() Checkpoint { c := open(l, 12); c.Origin = "x"; return c }(), fetch(l), ErrCheckpoint},
		{"proof fetch fails", open(l, 9), open(l, 12), func(uint64, uint64) ([][]byte, error) { return nil, errors.New("down") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extends(tc.prev, tc.next, tc.fetch)
			if tc.name == "proof fetch fails" {
				if err == nil || errors.Is(err, ErrNotExtending) {
					t.Fatalf("Extends = %v, want a fetch error that is not a fork", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Extends = %v, want %v", err, tc.want)
			}
		})
	}
}
