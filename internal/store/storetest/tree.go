package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/store"
)

// ReferenceRoot is RFC 9162's MTH over leaves (leaf bytes, not hashes),
// written from the RFC's recursive definition and nothing else, so the
// stores' incremental trees are checked against an independent
// computation: MTH({d0}) = SHA-256(0x00 ‖ d0); MTH(D[n]) =
// SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])) for k the largest power of two
// smaller than n.
func ReferenceRoot(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		sum := sha256.Sum256(nil)
		return sum[:]
	case 1:
		sum := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return sum[:]
	default:
		k := 1 << (bits.Len(uint(n-1)) - 1)
		sum := sha256.Sum256(append(append([]byte{1}, ReferenceRoot(leaves[:k])...), ReferenceRoot(leaves[k:])...))
		return sum[:]
	}
}

// Syncer is implemented by stores that acknowledge records before they
// write them where the log is read from (boltstore's journal): Sync
// returns once everything acknowledged is there.
type Syncer interface {
	Sync(ctx context.Context) error
}

// TreeCounter is implemented by stores that count the tree's database
// operations (node and tree head reads and writes), so the suite can show
// appends and proofs cost O(log n) of them.
type TreeCounter interface {
	TreeOps() (reads, writes uint64)
}

// leavesOf returns the leaf bytes of the whole log.
func leavesOf(t *testing.T, s store.Store) [][]byte {
	t.Helper()
	recs := audit(t, s)
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = store.EncodeAuditRecord(r)
	}
	return out
}

// CheckLog checks the store's tree against ReferenceRoot: the root of every
// size up to 300 (and of random larger ones and the whole log), an
// inclusion proof of every leaf in every tree up to 40 leaves and in the
// whole log (up to 300 leaves; random leaves beyond), consistency proofs
// between every pair of sizes up to 24, and random pairs of the rest, all
// verified with transparency-dev/merkle/proof. Backends call it after a
// restart, too. The bounds keep it to a few thousand requests, which a
// store on etcd answers in seconds.
func CheckLog(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	leaves := leavesOf(t, s)
	n := uint64(len(leaves))
	size, err := s.LogSize(ctx)
	must(t, "LogSize", err)
	if size != n {
		t.Fatalf("LogSize = %d, the log holds %d records", size, n)
	}
	rnd := rand.New(rand.NewPCG(uint64(n), 16))
	// roots[m] is computed once, from leaves alone.
	roots := make([][]byte, n+1)
	root := func(m uint64) []byte {
		if roots[m] == nil {
			roots[m] = ReferenceRoot(leaves[:m])
		}
		return roots[m]
	}
	checkRoot := func(m uint64) {
		t.Helper()
		got, err := s.LogRoot(ctx, m)
		must(t, fmt.Sprintf("LogRoot(%d)", m), err)
		if !bytes.Equal(got, root(m)) {
			t.Fatalf("LogRoot(%d) = %x, want %x", m, got, root(m))
		}
	}
	for m := uint64(1); m <= min(n, 300); m++ {
		checkRoot(m)
	}
	if n > 300 {
		for range 100 {
			checkRoot(301 + rnd.Uint64N(n-300))
		}
		checkRoot(n)
	}
	inclusion := func(index, m uint64) {
		t.Helper()
		p, err := s.InclusionProof(ctx, index, m)
		must(t, fmt.Sprintf("InclusionProof(%d, %d)", index, m), err)
		if err := proof.VerifyInclusion(store.LogHasher, index, m, store.LogHasher.HashLeaf(leaves[index]), p, root(m)); err != nil {
			t.Fatalf("InclusionProof(%d, %d) does not verify: %v", index, m, err)
		}
	}
	consistency := func(m1, m2 uint64) {
		t.Helper()
		p, err := s.ConsistencyProof(ctx, m1, m2)
		must(t, fmt.Sprintf("ConsistencyProof(%d, %d)", m1, m2), err)
		if err := proof.VerifyConsistency(store.LogHasher, m1, m2, p, root(m1), root(m2)); err != nil {
			t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", m1, m2, err)
		}
	}
	for m := uint64(1); m <= min(n, 40); m++ {
		for i := uint64(0); i < m; i++ {
			inclusion(i, m)
		}
	}
	for _, m := range []uint64{n - 1, n} {
		switch {
		case m <= 40:
		case m <= 300:
			for i := uint64(0); i < m; i++ {
				inclusion(i, m)
			}
		default:
			for range 200 {
				inclusion(rnd.Uint64N(m), m)
			}
		}
	}
	for m2 := uint64(1); m2 <= min(n, 24); m2++ {
		for m1 := uint64(1); m1 <= m2; m1++ {
			consistency(m1, m2)
		}
	}
	for range 200 {
		m := 1 + rnd.Uint64N(n)
		inclusion(rnd.Uint64N(m), m)
		m1 := 1 + rnd.Uint64N(m)
		consistency(m1, m)
	}
}

// appendMixed appends n records: alone, in concurrent bursts (so group
// commits carry many leaves), and as signatures.
func appendMixed(t *testing.T, s store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	i := 0
	for i < n {
		switch i % 3 {
		case 0:
			_, err := s.AppendAudit(ctx, ev(fmt.Sprintf("op.%d", i)))
			must(t, "AppendAudit", err)
			i++
		case 1:
			burst := min(n-i, 1+i%47)
			var wg sync.WaitGroup
			errs := make(chan error, burst)
			for j := range burst {
				wg.Go(func() {
					if j%2 == 0 {
						_, err := s.AppendAudit(ctx, ev(fmt.Sprintf("burst.%d.%d", i, j)))
						errs <- err
						return
					}
					rec := sigRecord(digest(fmt.Sprintf("tree-%d-%d", i, j)), "k", i+j)
					errs <- s.PutSignature(ctx, rec, sigEvent(rec))
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				must(t, "burst", err)
			}
			i += burst
		case 2:
			rec := sigRecord(digest(fmt.Sprintf("tree-%d", i)), "k", i)
			must(t, "PutSignature", s.PutSignature(ctx, rec, sigEvent(rec)))
			i++
		}
	}
}

func testLogTree(t *testing.T, s store.Store) {
	ctx := context.Background()
	size, err := s.LogSize(ctx)
	must(t, "LogSize of an empty log", err)
	if size != 0 {
		t.Fatalf("an empty log has size %d", size)
	}
	_, err = s.LogRoot(ctx, 1)
	checkErr(t, "LogRoot of an empty log", err, errdefs.ErrInvalidArgument)

	appendMixed(t, s, 257)
	CheckLog(t, s)

	// Out of range: a clear refusal, never a panic.
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"LogRoot(0)", func() error { _, err := s.LogRoot(ctx, 0); return err }},
		{"LogRoot(size+1)", func() error { _, err := s.LogRoot(ctx, 258); return err }},
		{"LogRoot(max)", func() error { _, err := s.LogRoot(ctx, ^uint64(0)); return err }},
		{"InclusionProof(size, size)", func() error { _, err := s.InclusionProof(ctx, 257, 257); return err }},
		{"InclusionProof(0, 0)", func() error { _, err := s.InclusionProof(ctx, 0, 0); return err }},
		{"InclusionProof(0, size+1)", func() error { _, err := s.InclusionProof(ctx, 0, 258); return err }},
		{"InclusionProof(max, max)", func() error { _, err := s.InclusionProof(ctx, ^uint64(0), ^uint64(0)); return err }},
		{"ConsistencyProof(0, 1)", func() error { _, err := s.ConsistencyProof(ctx, 0, 1); return err }},
		{"ConsistencyProof(2, 1)", func() error { _, err := s.ConsistencyProof(ctx, 2, 1); return err }},
		{"ConsistencyProof(1, size+1)", func() error { _, err := s.ConsistencyProof(ctx, 1, 258); return err }},
	} {
		checkErr(t, c.name, c.fn(), errdefs.ErrInvalidArgument)
	}

	// More leaves keep every old root: the tree only grows.
	old, err := s.LogRoot(ctx, 100)
	must(t, "LogRoot(100)", err)
	appendMixed(t, s, 40)
	again, err := s.LogRoot(ctx, 100)
	must(t, "LogRoot(100) after appends", err)
	if !bytes.Equal(old, again) {
		t.Fatalf("the root of the first 100 leaves changed after appends: %x, then %x", old, again)
	}
	CheckLog(t, s)
}

func testSignatureLeaf(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.AppendAudit(ctx, ev("before"))
	must(t, "AppendAudit", err)
	d := digest("signature-leaf")
	r1, r2 := sigRecord(d, "k", 1), sigRecord(d, "k", 2)
	must(t, "PutSignature 1", s.PutSignature(ctx, r1, sigEvent(r1)))
	must(t, "PutSignature 2", s.PutSignature(ctx, r2, sigEvent(r2)))
	recs := audit(t, s)

	for i, r := range []store.SignatureRecord{r1, r2} {
		leaf, err := s.SignatureLeaf(ctx, d, r.Signature)
		must(t, fmt.Sprintf("SignatureLeaf %d", i+1), err)
		if leaf != uint64(i+1) {
			t.Fatalf("SignatureLeaf of signature %d = %d, want %d", i+1, leaf, i+1)
		}
		rec := recs[leaf]
		if !bytes.Equal(rec.Signature, r.Signature) || !store.SignatureRecordMatches(rec, d, r.Signature) {
			t.Fatalf("leaf %d is not the record of signature %d: %+v", leaf, i+1, rec)
		}
		// The leaf, with its proof, shows this digest and this signature
		// were logged.
		size := uint64(len(recs))
		root, err := s.LogRoot(ctx, size)
		must(t, "LogRoot", err)
		p, err := s.InclusionProof(ctx, leaf, size)
		must(t, "InclusionProof", err)
		if err := proof.VerifyInclusion(store.LogHasher, leaf, size, store.LeafHash(rec), p, root); err != nil {
			t.Fatalf("signature %d's leaf does not verify: %v", i+1, err)
		}
	}
	// The same signature recorded again (Ed25519 re-signing an unchanged
	// artifact): the latest record is the one named.
	must(t, "PutSignature 1 again", s.PutSignature(ctx, r1, sigEvent(r1)))
	if leaf, err := s.SignatureLeaf(ctx, d, r1.Signature); err != nil || leaf != 3 {
		t.Fatalf("SignatureLeaf of a signature recorded twice = %d, %v; want 3, the latest", leaf, err)
	}
	_, err = s.SignatureLeaf(ctx, d, bytes.Repeat([]byte{9}, 64))
	checkErr(t, "SignatureLeaf of a signature never made", err, errdefs.ErrNotFound)
	_, err = s.SignatureLeaf(ctx, digest("other"), r1.Signature)
	checkErr(t, "SignatureLeaf under another digest", err, errdefs.ErrNotFound)
	_, err = s.SignatureLeaf(ctx, d[:5], r1.Signature)
	checkErr(t, "SignatureLeaf of a short digest", err, errdefs.ErrInvalidArgument)
	_, err = s.SignatureLeaf(ctx, d, nil)
	checkErr(t, "SignatureLeaf of no signature", err, errdefs.ErrInvalidArgument)

	// A signature's record names the signature: a different one in the
	// event is refused, nothing written.
	r3 := sigRecord(d, "k", 3)
	e3 := sigEvent(r3)
	e3.Signature = r1.Signature
	unchanged(t, s, "PutSignature naming another signature", errdefs.ErrInvalidArgument, func() error { return s.PutSignature(ctx, r3, e3) })
	// And the digest: the record is found by both.
	e3 = sigEvent(r3)
	e3.Digest = fmt.Sprintf("%x", digest("another artifact"))
	unchanged(t, s, "PutSignature naming another digest", errdefs.ErrInvalidArgument, func() error { return s.PutSignature(ctx, r3, e3) })
}

// testTreeOps counts the tree's reads and writes: an append costs
// O(log n) of them (one record at a time, so each append is its own
// transaction), and so does a proof.
func testTreeOps(t *testing.T, s store.Store) {
	tc, ok := s.(TreeCounter)
	if !ok {
		t.Skipf("%T does not count its tree operations", s)
	}
	ctx := context.Background()
	var maxR, maxW uint64
	// A store that writes its log later (boltstore's journal) writes each
	// record's leaf by the Sync after it.
	sync := func() {
		if sy, ok := s.(Syncer); ok {
			must(t, "Sync", sy.Sync(ctx))
		}
	}
	for i := uint64(0); i < 300; i++ {
		sync()
		r0, w0 := tc.TreeOps()
		_, err := s.AppendAudit(ctx, ev("count"))
		must(t, "AppendAudit", err)
		sync()
		r1, w1 := tc.TreeOps()
		bound := uint64(bits.Len64(i+1)) + 2
		if r1-r0 > bound || w1-w0 > bound {
			t.Fatalf("append %d (size %d → %d): %d tree reads, %d writes; want at most %d each (O(log n))", i+1, i, i+1, r1-r0, w1-w0, bound)
		}
		maxR, maxW = max(maxR, r1-r0), max(maxW, w1-w0)
	}
	r0, w0 := tc.TreeOps()
	_, err := s.InclusionProof(ctx, 137, 300)
	must(t, "InclusionProof", err)
	_, err = s.ConsistencyProof(ctx, 137, 300)
	must(t, "ConsistencyProof", err)
	_, err = s.LogRoot(ctx, 299)
	must(t, "LogRoot", err)
	r1, w1 := tc.TreeOps()
	if bound := uint64(3*(2*bits.Len64(300)+2)) + 3; r1-r0 > bound || w1 != w0 {
		t.Fatalf("two proofs and a root: %d tree reads, %d writes; want at most %d reads, no writes", r1-r0, w1-w0, bound)
	}
	t.Logf("per append: at most %d tree reads, %d writes (300 appends); two proofs and a root of ~300: %d reads", maxR, maxW, r1-r0)
}
