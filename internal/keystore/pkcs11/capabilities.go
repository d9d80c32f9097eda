//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"
	"log/slog"

	p11 "github.com/miekg/pkcs11"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore"
)

// capabilities are what the token says it can do, read once at Open.
// Modules differ: p11-kit's RPC passes on only the mechanisms it can
// marshal (0.24 has no CKM_EDDSA), hardware tokens cap their sessions, some
// keys need a login before every signature.
type capabilities struct {
	// listed is false when the module cannot list its mechanisms
	// (CKR_FUNCTION_NOT_SUPPORTED): then every mechanism is assumed and the
	// token has the last word when it is used.
	listed bool
	mechs  map[uint]p11.MechanismInfo
	// infoKnown is false when C_GetMechanismInfo is not supported; mechs
	// then holds zero infos and flags are not checked.
	infoKnown bool

	maxSessions, maxRwSessions      uint // CK_EFFECTIVELY_INFINITE or CK_UNAVAILABLE_INFORMATION when unbounded
	protectedAuthPath, loginRequire bool
}

// algorithmMechs are the mechanisms each algorithm needs, with the flag each
// must carry: signing (named first when missing) and key pair generation.
var algorithmMechs = map[keystore.Algorithm][2]struct {
	mech uint
	flag uint
	name string
}{
	keystore.Ed25519:   {{ckmEdDSA, p11.CKF_SIGN, "CKM_EDDSA"}, {ckmECEdwardsKeyPairGen, p11.CKF_GENERATE_KEY_PAIR, "CKM_EC_EDWARDS_KEY_PAIR_GEN"}},
	keystore.ECDSAP256: {{p11.CKM_ECDSA, p11.CKF_SIGN, "CKM_ECDSA"}, {p11.CKM_EC_KEY_PAIR_GEN, p11.CKF_GENERATE_KEY_PAIR, "CKM_EC_KEY_PAIR_GEN"}},
}

// otherAlgorithm names the algorithm to suggest when one is missing.
var otherAlgorithm = map[keystore.Algorithm]keystore.Algorithm{
	keystore.Ed25519: keystore.ECDSAP256, keystore.ECDSAP256: keystore.Ed25519,
}

// notSupported reports whether err says an optional function is missing.
func notSupported(err error) bool {
	return errors.Is(err, p11.Error(p11.CKR_FUNCTION_NOT_SUPPORTED))
}

// discover reads the token's mechanisms and limits. Only failures of the
// calls themselves are errors; a module without the optional listing
// functions gets capabilities that assume everything.
func discover(c *p11.Ctx, slot uint, ti p11.TokenInfo) (capabilities, error) {
	cp := capabilities{
		maxSessions:       ti.MaxSessionCount,
		maxRwSessions:     ti.MaxRwSessionCount,
		protectedAuthPath: ti.Flags&p11.CKF_PROTECTED_AUTHENTICATION_PATH != 0,
		loginRequire:      ti.Flags&p11.CKF_LOGIN_REQUIRED != 0,
	}
	list, err := c.GetMechanismList(slot)
	switch {
	case notSupported(err):
		return cp, nil
	case err != nil:
		return cp, err
	}
	cp.listed, cp.infoKnown = true, true
	cp.mechs = make(map[uint]p11.MechanismInfo, len(list))
	for _, m := range list {
		if !cp.infoKnown {
			cp.mechs[m.Mechanism] = p11.MechanismInfo{}
			continue
		}
		info, err := c.GetMechanismInfo(slot, []*p11.Mechanism{m})
		switch {
		case notSupported(err):
			cp.infoKnown = false
		case err != nil:
			return cp, err
		}
		cp.mechs[m.Mechanism] = info
	}
	return cp, nil
}

// missing returns the name of the first mechanism alg needs that the token
// does not offer, or "".
func (cp capabilities) missing(alg keystore.Algorithm) string {
	if !cp.listed {
		return ""
	}
	for _, need := range algorithmMechs[alg] {
		info, ok := cp.mechs[need.mech]
		if !ok || (cp.infoKnown && info.Flags&need.flag == 0) {
			return need.name
		}
	}
	return ""
}

// supports refuses alg on a token that lacks its mechanisms, with a message
// that says what to use instead.
func (cp capabilities) supports(label string, alg keystore.Algorithm) error {
	if name := cp.missing(alg); name != "" {
		return fmt.Errorf("token %q: this HSM offers no %s; use %s: %w: %w", label, name, otherAlgorithm[alg], keystore.ErrMechanismMissing, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// bounded reports whether a session count from C_GetTokenInfo is a limit.
func bounded(n uint) bool {
	return n != p11.CK_EFFECTIVELY_INFINITE && n != p11.CK_UNAVAILABLE_INFORMATION
}

// poolSize is the number of sessions to pool: at most asked, and no more
// than the token allows (we open read/write sessions).
func (cp capabilities) poolSize(asked int) int {
	n := asked
	for _, limit := range []uint{cp.maxSessions, cp.maxRwSessions} {
		if bounded(limit) && uint(n) > limit {
			n = int(limit)
		}
	}
	return max(n, 1)
}

// log reports the capabilities once, at Open.
func (cp capabilities) log(l *slog.Logger, asked, pool int) {
	limit := func(n uint) slog.Value {
		if !bounded(n) {
			return slog.StringValue("unbounded")
		}
		return slog.Uint64Value(uint64(n))
	}
	attrs := []any{
		slog.Bool("mechanisms_listed", cp.listed),
		slog.Bool("mechanism_info", cp.infoKnown),
		slog.Any("max_session_count", limit(cp.maxSessions)),
		slog.Any("max_rw_session_count", limit(cp.maxRwSessions)),
		slog.Bool("protected_authentication_path", cp.protectedAuthPath),
		slog.Bool("login_required", cp.loginRequire),
		slog.Int("sessions_asked", asked),
		slog.Int("sessions_pooled", pool),
	}
	for _, alg := range []keystore.Algorithm{keystore.Ed25519, keystore.ECDSAP256} {
		avail := "yes"
		if m := cp.missing(alg); m != "" {
			avail = "no (" + m + " missing)"
		} else if !cp.listed {
			avail = "unknown (mechanisms not listed)"
		}
		attrs = append(attrs, slog.String(string(alg), avail))
	}
	l.Info("PKCS#11 token capabilities", attrs...)
	if pool < asked {
		l.Warn("the token allows fewer sessions than asked; pooling fewer",
			slog.Int("sessions_asked", asked), slog.Int("sessions_pooled", pool))
	}
}
