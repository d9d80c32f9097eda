//go:build !cgo

package pkcs11_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := pkcs11.Open(context.Background(), pkcs11.Config{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "without cgo") {
		t.Fatalf("Open: %v, want the no-cgo error", err)
	}
}

// The SoftHSM2 suite never skips silently: a build without cgo fails here
// instead of reporting the package as passed.
func TestSoftHSMSuiteNeedsCgo(t *testing.T) {
	t.Fatal("the PKCS#11/SoftHSM2 tests need cgo: run them with CGO_ENABLED=1 and a C compiler")
}
