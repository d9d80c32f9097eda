//go:build cgo

package pkcs11

import (
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// ChangeUserPIN changes the token's user PIN from oldPIN to newPIN with
// C_SetPIN, in a logged-in session of its own, outside any KeyStore: an
// administrator's act. A running signerd that loses its login afterwards
// finds its PIN refused and stops offering it (see the package doc); the
// end-to-end suite uses this to check exactly that. PINs never appear in
// errors.
func ChangeUserPIN(modulePath, tokenLabel, oldPIN, newPIN string) error {
	if newPIN == "" {
		return fmt.Errorf("change the user PIN of token %q: the new PIN is empty: %w", tokenLabel, errdefs.ErrInvalidArgument)
	}
	return withTokenSession(modulePath, tokenLabel, oldPIN, func(c *p11.Ctx, s p11.SessionHandle) error {
		return toKind("change the user PIN", tokenLabel, c.SetPIN(s, oldPIN, newPIN))
	})
}
