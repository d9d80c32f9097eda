//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// module is the process-wide state of one PKCS#11 library (by canonical
// path). See the package doc for why it exists.
type module struct {
	path string // canonical: symlinks resolved

	// mu serialises everything that may initialise or finalize the library
	// (crypto11.Configure and Close, our raw uses) and every C_Login and
	// C_Logout, so that a raw use either owns initialisation for its whole run
	// or finds crypto11 holding it, and logins are counted exactly.
	mu     sync.Mutex
	logins map[uint]*tokenLogin // by slot ID; guarded by mu
}

var modules = struct {
	sync.Mutex
	byPath map[string]*module
}{byPath: map[string]*module{}}

// moduleFor returns the registry entry for the canonical path; entries live
// for the process (there are one or two libraries per process).
func moduleFor(canonical string) *module {
	modules.Lock()
	defer modules.Unlock()
	m := modules.byPath[canonical]
	if m == nil {
		m = &module{path: canonical, logins: map[uint]*tokenLogin{}}
		modules.byPath[canonical] = m
	}
	return m
}

// installHint is appended to errors about a missing or unloadable module.
const installHint = "for SoftHSM2 run `apt-get install softhsm2` (module /usr/lib/softhsm/libsofthsm2.so)"

// checkModuleFile resolves path to the canonical file name of a regular
// file, so that errors name the problem before the loader does.
func checkModuleFile(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("no PKCS#11 module path given; %s: %w", installHint, errdefs.ErrInvalidArgument)
	}
	canonical, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("PKCS#11 module %q does not exist; %s: %w", path, installHint, errdefs.ErrInvalidArgument)
		}
		return "", fmt.Errorf("PKCS#11 module %q: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	canonical, err = filepath.Abs(canonical)
	if err != nil {
		return "", fmt.Errorf("PKCS#11 module %q: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	fi, err := os.Stat(canonical)
	if err != nil {
		return "", fmt.Errorf("PKCS#11 module %q: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("PKCS#11 module %q is not a regular file; %s: %w", path, installHint, errdefs.ErrInvalidArgument)
	}
	return canonical, nil
}

// loadLocked loads the library into a fresh miekg context and initialises
// it if nobody has. owned reports whether this call initialised it, in which
// case release finalizes it. m.mu MUST be held from load to release.
func (m *module) loadLocked(userPath string) (c *p11.Ctx, owned bool, err error) {
	c = p11.New(m.path)
	if c == nil {
		// miekg says nothing more: dlopen or C_GetFunctionList failed.
		return nil, false, fmt.Errorf("PKCS#11 module %q could not be loaded (not a PKCS#11 library, or built for another architecture); %s: %w",
			userPath, installHint, errdefs.ErrInvalidArgument)
	}
	switch err := c.Initialize(); {
	case err == nil:
		return c, true, nil
	case errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		// crypto11 (an open KeyStore) holds it; it finalizes, not us.
		return c, false, nil
	default:
		c.Destroy()
		return nil, false, errdefs.WithReason(errdefs.ReasonHSMUnavailable, fmt.Errorf(
			"initialise PKCS#11 module %q: %w (for SoftHSM2, check SOFTHSM2_CONF and its tokendir): %w",
			userPath, err, errdefs.ErrUnavailable))
	}
}

// release undoes loadLocked. m.mu MUST still be held.
func (m *module) release(c *p11.Ctx, owned bool) {
	if owned {
		_ = c.Finalize()
	}
	c.Destroy()
}

// findSlot returns the slot holding the initialised token labelled label.
// A missing label is ErrNotFound naming the labels that exist; a label
// carried by two tokens is refused, since either could be picked.
func findSlot(c *p11.Ctx, modulePath, label string) (uint, p11.TokenInfo, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, p11.TokenInfo{}, unavailable("list slots", label, err)
	}
	var (
		found  []uint
		info   p11.TokenInfo
		labels []string
	)
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			return 0, p11.TokenInfo{}, unavailable(fmt.Sprintf("read token in slot %d", s), label, err)
		}
		if ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		labels = append(labels, ti.Label)
		if ti.Label == label {
			found = append(found, s)
			info = ti
		}
	}
	switch len(found) {
	case 0:
		return 0, p11.TokenInfo{}, fmt.Errorf("no PKCS#11 token labelled %q in module %q (tokens present: %q): %w",
			label, modulePath, labels, errdefs.ErrNotFound)
	case 1:
		return found[0], info, nil
	}
	return 0, p11.TokenInfo{}, fmt.Errorf("%d PKCS#11 tokens labelled %q in module %q (slots %v); labels must be unique: %w",
		len(found), label, modulePath, found, errdefs.ErrFailedPrecondition)
}

// checkTokenFlags refuses tokens whose user PIN cannot be used, before a
// login attempt would count against the PIN.
func checkTokenFlags(label string, ti p11.TokenInfo) error {
	switch {
	case ti.Flags&p11.CKF_USER_PIN_LOCKED != 0:
		return pinError(label, p11.Error(p11.CKR_PIN_LOCKED))
	case ti.Flags&p11.CKF_USER_PIN_INITIALIZED == 0:
		return pinError(label, p11.Error(p11.CKR_USER_PIN_NOT_INITIALIZED))
	}
	return nil
}

// withTokenSession runs fn with a logged-in R/W session on the token, outside
// any KeyStore: for InitToken's siblings, the inspection helpers used by
// tests and tools, in this process or another one. It holds m.mu throughout.
func withTokenSession(modulePath, label, pin string, fn func(c *p11.Ctx, s p11.SessionHandle) error) error {
	canonical, err := checkModuleFile(modulePath)
	if err != nil {
		return err
	}
	m := moduleFor(canonical)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, owned, err := m.loadLocked(modulePath)
	if err != nil {
		return err
	}
	defer m.release(c, owned)
	slot, ti, err := findSlot(c, modulePath, label)
	if err != nil {
		return err
	}
	if err := checkTokenFlags(label, ti); err != nil {
		return err
	}
	s, err := c.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return toKind("open session", label, err)
	}
	defer func() { _ = c.CloseSession(s) }()
	if err := m.acquireLoginLocked(c, s, slot, label, pin); err != nil {
		return err
	}
	defer m.releaseLoginLocked(c, s, slot)
	return fn(c, s)
}
