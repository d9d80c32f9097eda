package skill

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"testing"
)

// referenceParseDERSignature is parseDERSignature as it was before the
// parseCanonicalDER fast path, kept verbatim so that the differential tests
// compare against the behaviour the conformance corpus was checked with,
// even if the asn1 fallback in signature.go is edited later.
func referenceParseDERSignature(der []byte) (r, s *big.Int, canonical bool, err error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: %v", ErrSignatureEncoding, err)
	}
	if sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, nil, false, fmt.Errorf("%w: r and s must be positive", ErrSignatureEncoding)
	}
	canonical = len(rest) == 0
	if canonical {
		re, err := asn1.Marshal(sig)
		canonical = err == nil && bytes.Equal(re, der)
	}
	return sig.R, sig.S, canonical, nil
}

// checkAgainstReference fails unless parseDERSignature and the reference
// agree on der: r, s, canonical, success, ErrSignatureEncoding and the
// error text. It also requires the fast path to take exactly the inputs
// the reference calls canonical (for inputs under 16 MiB, whose lengths
// all fit the fast path's 3 length bytes), so that a fast path which
// silently stopped matching real signatures would fail here, not only in a
// benchmark.
func checkAgainstReference(t testing.TB, der []byte) {
	t.Helper()
	r, s, canonical, err := parseDERSignature(der)
	wr, ws, wcanonical, werr := referenceParseDERSignature(der)
	if (err == nil) != (werr == nil) ||
		errors.Is(err, ErrSignatureEncoding) != errors.Is(werr, ErrSignatureEncoding) ||
		(err != nil && err.Error() != werr.Error()) {
		t.Fatalf("%x: err %v, reference %v", der, err, werr)
	}
	if canonical != wcanonical || !sameInt(r, wr) || !sameInt(s, ws) {
		t.Fatalf("%x: (%v, %v, %v), reference (%v, %v, %v)", der, r, s, canonical, wr, ws, wcanonical)
	}
	if fr, fs, ok := parseCanonicalDER(der); ok != wcanonical && len(der) < 1<<24 {
		t.Fatalf("%x: fast path ok=%v, reference canonical=%v", der, ok, wcanonical)
	} else if ok && (!sameInt(fr, wr) || !sameInt(fs, ws)) {
		t.Fatalf("%x: fast path (%v, %v), reference (%v, %v)", der, fr, fs, wr, ws)
	}
}

func sameInt(a, b *big.Int) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Cmp(b) == 0
}
