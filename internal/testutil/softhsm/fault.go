package softhsm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/signerd/signerd/internal/keystore/pkcs11"
)

// Away is a token whose object store has been moved out of SoftHSM2's
// token directory: the real fault the reliability tests inject.
//
// What SoftHSM2 2.6 does then, observed with this very library: a process
// that has the library initialised keeps listing the slot and keeps its
// sessions, but the token is invalid in that library instance for good:
// C_GetTokenInfo fails with CKR_GENERAL_ERROR, object handles become
// CKR_OBJECT_HANDLE_INVALID and C_FindObjects finds nothing (no error).
// Moving the directory back does not help that instance; only
// C_Finalize and C_Initialize (a fresh instance) see the token again. A
// daemon therefore recovers only if it re-initialises the library.
type Away struct {
	tok      *Token
	from, to string
	confPath string // a softhsm2.conf whose tokendir is the away place
}

// MoveAway moves the token's directory (tokens/<uuid>) out of the token
// directory, to a sibling directory of the test's.
func (tok *Token) MoveAway(t testing.TB) *Away {
	t.Helper()
	tokens := filepath.Join(tok.Dir, "tokens")
	entries, err := os.ReadDir(tokens)
	if err != nil || len(entries) != 1 {
		t.Fatalf("token directory %s: want exactly one token, got %d (%v)", tokens, len(entries), err)
	}
	awayDir := filepath.Join(tok.Dir, "away")
	if err := os.MkdirAll(awayDir, 0o700); err != nil {
		t.Fatal(err)
	}
	a := &Away{
		tok:      tok,
		from:     filepath.Join(tokens, entries[0].Name()),
		to:       filepath.Join(awayDir, entries[0].Name()),
		confPath: filepath.Join(tok.Dir, "away.conf"),
	}
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", awayDir)
	if err := os.WriteFile(a.confPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a.from, a.to); err != nil {
		t.Fatalf("move the token away: %v", err)
	}
	return a
}

// Restore moves the token's directory back where SoftHSM2 looks for it.
func (a *Away) Restore(t testing.TB) {
	t.Helper()
	if err := os.Rename(a.to, a.from); err != nil {
		t.Fatalf("move the token back: %v", err)
	}
}

// ChangePIN changes the user PIN of the token while it is away, as an
// administrator could meanwhile, through a library instance configured for
// the away place, and records the new PIN in tok.PIN. The calling process
// MUST NOT have the library open (no KeyStore): SOFTHSM2_CONF is read when
// the library is initialised. It is for tests whose signerd runs in another
// process.
func (a *Away) ChangePIN(t *testing.T, newPIN string) {
	t.Helper()
	old := os.Getenv("SOFTHSM2_CONF")
	t.Setenv("SOFTHSM2_CONF", a.confPath)
	err := pkcs11.ChangeUserPIN(a.tok.ModulePath, a.tok.Label, a.tok.PIN, newPIN)
	t.Setenv("SOFTHSM2_CONF", old)
	if err != nil {
		t.Fatalf("change the PIN of the away token: %v", err)
	}
	a.tok.PIN = newPIN
}
