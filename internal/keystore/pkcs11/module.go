//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
)

// module is the process-wide state of one PKCS#11 library (by canonical
// path). See the package doc for why it exists.
type module struct {
	path string // canonical: symlinks resolved

	// mu serialises loading, initialising and finalizing the library and
	// every C_Login and C_Logout, so that logins are counted exactly.
	mu     sync.Mutex
	logins map[uint]*tokenLogin // by slot ID; guarded by mu
	// ctx is the process's one handle on the library: one
	// C_GetFunctionList, one C_Initialize, one C_Finalize. users counts
	// the KeyStores and raw uses holding it; the last release finalizes.
	// Both are guarded by mu.
	ctx   *p11.Ctx
	users int
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

// loadLocked returns the library's context, loading and initialising it
// for the first user; every call MUST be matched by one releaseLocked. m.mu
// MUST be held.
//
// The context is shared rather than one per user because modules differ in
// what a second C_GetFunctionList and C_Initialize mean: SoftHSM2 refuses a
// second C_Initialize, p11-kit's client gives every function list a state
// (and an RPC connection) of its own, initialised and logged in separately.
// One function list, initialised once, means the same thing everywhere.
func (m *module) loadLocked(userPath string) (*p11.Ctx, error) {
	if m.users > 0 {
		m.users++
		return m.ctx, nil
	}
	c := p11.New(m.path)
	if c == nil {
		// miekg says nothing more: dlopen or C_GetFunctionList failed.
		return nil, fmt.Errorf("PKCS#11 module %q could not be loaded (not a PKCS#11 library, or built for another architecture); %s: %w",
			userPath, installHint, errdefs.ErrInvalidArgument)
	}
	if err := initialize(c, userPath); err != nil {
		c.Destroy()
		return nil, err
	}
	m.ctx, m.users = c, 1
	return c, nil
}

// initialize calls C_Initialize with CKF_OS_LOCKING_OK and no mutex
// callbacks: our calls come from many goroutines at once, so the module
// must lock, and Go cannot hand it mutex functions that are safe to call
// from the module's own threads.
func initialize(c *p11.Ctx, userPath string) error {
	switch err := c.Initialize(p11.InitializeWithFlags(p11.CKF_OS_LOCKING_OK)); {
	case err == nil:
		return nil
	case errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		// Only a user of the library outside this package can have
		// initialised it (we initialise once, under m.mu): we cannot know
		// when it will finalize, so refuse rather than share state we do
		// not own.
		return fmt.Errorf("initialise PKCS#11 module %q: it is already initialised by another user in this process: %w",
			userPath, errdefs.ErrFailedPrecondition)
	case errors.Is(err, p11.Error(p11.CKR_CANT_LOCK)):
		return fmt.Errorf("initialise PKCS#11 module %q: the module cannot lock with the operating system's primitives (CKR_CANT_LOCK), which signerd needs to call it from several threads: %w",
			userPath, errdefs.ErrInvalidArgument)
	default:
		return errdefs.WithReason(errdefs.ReasonHSMUnavailable, fmt.Errorf(
			"initialise PKCS#11 module %q: %w (for SoftHSM2, check SOFTHSM2_CONF and its tokendir): %w",
			userPath, err, errdefs.ErrUnavailable))
	}
}

// releaseLocked drops one user of the library; the last one finalizes it
// and unloads it. m.mu MUST be held.
func (m *module) releaseLocked() {
	if m.users--; m.users > 0 {
		return
	}
	// An error means the library was finalized under us already (a reset
	// module, or a test's fault injection); it is unloaded either way.
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
	m.ctx = nil
}

func identityOf(ti p11.TokenInfo) TokenIdentity {
	trim := func(s string) string { return strings.TrimRight(s, " \x00") }
	return TokenIdentity{Label: trim(ti.Label), Serial: trim(ti.SerialNumber), Model: trim(ti.Model), Manufacturer: trim(ti.ManufacturerID)}
}

// tokenSelector chooses a token: every field that is set must match.
type tokenSelector TokenIdentity

func (sel tokenSelector) matches(id TokenIdentity) bool {
	for _, f := range [][2]string{{sel.Label, id.Label}, {sel.Serial, id.Serial}, {sel.Model, id.Model}, {sel.Manufacturer, id.Manufacturer}} {
		if f[0] != "" && f[0] != f[1] {
			return false
		}
	}
	return true
}

func (sel tokenSelector) String() string {
	var parts []string
	for _, f := range [][2]string{{"label", sel.Label}, {"serial", sel.Serial}, {"model", sel.Model}, {"manufacturer", sel.Manufacturer}} {
		if f[1] != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f[0], f[1]))
		}
	}
	return strings.Join(parts, ", ")
}

// findSlot returns the slot holding the initialised token labelled label.
func findSlot(c *p11.Ctx, modulePath, label string) (uint, p11.TokenInfo, error) {
	return selectSlot(c, modulePath, tokenSelector{Label: label})
}

// selectSlot returns the slot holding the one initialised token sel
// matches. None is ErrNotFound naming the tokens that exist; several are
// refused, since either could be picked.
func selectSlot(c *p11.Ctx, modulePath string, sel tokenSelector) (uint, p11.TokenInfo, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, p11.TokenInfo{}, unavailable("list slots", sel.Label, err)
	}
	var (
		found   []uint
		info    p11.TokenInfo
		present []string
	)
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			return 0, p11.TokenInfo{}, unavailable(fmt.Sprintf("read token in slot %d", s), sel.Label, err)
		}
		if ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		id := identityOf(ti)
		present = append(present, fmt.Sprintf("%q serial %q", id.Label, id.Serial))
		if sel.matches(id) {
			found = append(found, s)
			info = ti
		}
	}
	switch len(found) {
	case 0:
		tokens := "no tokens present"
		if len(present) > 0 {
			tokens = "tokens present: " + strings.Join(present, ", ")
		}
		return 0, p11.TokenInfo{}, errdefs.Sentence(errdefs.ErrNotFound, "no PKCS#11 token with %s in module %q (%s)", sel, modulePath, tokens)
	case 1:
		return found[0], info, nil
	}
	return 0, p11.TokenInfo{}, fmt.Errorf("%d PKCS#11 tokens with %s in module %q (slots %v); choose one by serial (--pkcs11-uri 'pkcs11:serial=…'): %w",
		len(found), sel, modulePath, found, errdefs.ErrFailedPrecondition)
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
// tests and tools, in this process or another one. It holds m.mu throughout
// and shares the library (and the login) with any KeyStore open on it.
func withTokenSession(modulePath, label, pin string, fn func(c *p11.Ctx, s p11.SessionHandle) error) error {
	canonical, err := checkModuleFile(modulePath)
	if err != nil {
		return err
	}
	m := moduleFor(canonical)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.loadLocked(modulePath)
	if err != nil {
		return err
	}
	defer m.releaseLocked()
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
