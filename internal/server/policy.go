package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/service"
)

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// Policy is the Authorizer of a policy file (--policy). It maps caller
// identities to roles; a caller may make a call when at least one rule that
// matches the caller allows it. Deny by default: a caller no rule matches
// may do nothing, not even verify.
//
// The file is one JSON object; unknown fields, a field given twice in one
// object and a field spelt in another case are errors:
//
//	{
//	  "version": 1,
//	  "rules": [
//	    {"comment": "operators", "uids": [0], "role": "admin"},
//	    {"uids": [1000], "gids": [2000], "certs": ["build-farm.example.com"],
//	     "role": "signer", "keys": ["release", "skills"], "domains": ["example.com"]},
//	    {"everyone_local": true, "role": "verifier"}
//	  ]
//	}
//
// version must be 1. Each rule has a role and at least one selector:
//
//   - uids, gids: Unix-socket peers whose SO_PEERCRED uid, or primary gid,
//     is listed (supplementary groups are not seen).
//   - certs: TLS peers whose verified client certificate has one of these
//     names among its DNS, URI and email subject alternative names and its
//     common name (exact, case-sensitive match; no wildcards).
//   - everyone_local: true matches every Unix-socket peer (the socket's mode
//     decides who can connect).
//   - tcp_loopback: true matches the plaintext peers of an
//     --insecure-loopback listener (all are the one identity tcp-loopback).
//
// Roles are cumulative: verifier (Verify, ListTrusted, key/trust/policy
// reads, VerifySkill, the skill public documents, health, server
// reflection, the log's checkpoints, key, consistency proofs and the proof
// of a given signature); signer (also Sign and SignSkill, only with the keys the
// rule lists in "keys", and for
// SignSkill only for the domains in "domains"; "*" in either means any);
// admin (everything: keys, trust, policy, the audit records and the log's
// leaves, and signing with any key). keys
// and domains are allowed on signer rules only, and a signer rule needs
// keys; a signer rule without domains may not sign skills. comment is
// free text for humans.
type Policy struct {
	rules []policyRule
	// digest is the SHA-256 of the file's bytes, in hex: what the audit
	// record of a reload names (the path and rule count alone do not show
	// that someone's role changed).
	digest string
}

// policyFile is the JSON shape of a policy file.
type policyFile struct {
	Version *int              `json:"version"`
	Rules   []json.RawMessage `json:"rules"` // decoded one by one to name the rule in errors
}

type policyRuleInput struct {
	Comment       string   `json:"comment"`
	UIDs          []uint32 `json:"uids"`
	GIDs          []uint32 `json:"gids"`
	Certs         []string `json:"certs"`
	EveryoneLocal bool     `json:"everyone_local"`
	TCPLoopback   bool     `json:"tcp_loopback"`
	Role          string   `json:"role"`
	Keys          []string `json:"keys"`
	Domains       []string `json:"domains"`
}

// policyRule is one validated rule.
type policyRule struct {
	index         int
	uids, gids    []uint32
	certs         []string
	everyoneLocal bool
	tcpLoopback   bool
	role          Role
	keys          []string // signer only; "*" is any
	domains       []string // signer only; lower case, no trailing dot; "*" is any
}

// LoadPolicy reads and validates a policy file.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	defer f.Close()
	// Whoever can write the file decides who may sign at the next reload:
	// it must be writable by its owner only, and owned by root or by
	// signerd's own user (as the PIN file must be readable by them only).
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("policy file %s is writable by group or others (mode %04o): whoever may write it decides who may sign; chmod go-w it", path, st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("policy file %s is owned by uid %d, neither root nor signerd's user (uid %d): whoever owns it decides who may sign", path, sys.Uid, os.Geteuid())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy parses and validates a policy file's contents (see Policy for
// the format). Errors name the offending rule as rules[i] (from 0) and, for
// JSON errors, the line and column.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("larger than %d bytes", MaxPolicySize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in policyFile
	if err := dec.Decode(&in); err != nil {
		return nil, jsonError(data, dec, err)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: unexpected data after the policy object", position(data, dec.InputOffset()))
	}
	if err := checkFieldNames(data); err != nil {
		return nil, err
	}
	switch {
	case in.Version == nil:
		return nil, errors.New(`"version" is required (1)`)
	case *in.Version != 1:
		return nil, fmt.Errorf(`version %d is not supported (this signerd reads version 1)`, *in.Version)
	case len(in.Rules) == 0:
		return nil, errors.New(`"rules" is empty: every call would be denied`)
	}
	sum := sha256.Sum256(data)
	p := &Policy{digest: hex.EncodeToString(sum[:])}
	for i, raw := range in.Rules {
		var r policyRuleInput
		rdec := json.NewDecoder(bytes.NewReader(raw))
		rdec.DisallowUnknownFields()
		if err := rdec.Decode(&r); err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, ruleJSONError(err))
		}
		rule, err := r.validate(i)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		p.rules = append(p.rules, rule)
	}
	return p, nil
}

func (r policyRuleInput) validate(i int) (policyRule, error) {
	out := policyRule{index: i, uids: r.UIDs, gids: r.GIDs, everyoneLocal: r.EveryoneLocal, tcpLoopback: r.TCPLoopback}
	switch r.Role {
	case "admin":
		out.role = RoleAdmin
	case "signer":
		out.role = RoleSigner
	case "verifier":
		out.role = RoleVerifier
	case "":
		return out, errors.New(`"role" is required (admin, signer or verifier)`)
	default:
		return out, fmt.Errorf("role %q is unknown (want admin, signer or verifier)", r.Role)
	}
	if len(r.UIDs)+len(r.GIDs)+len(r.Certs) == 0 && !r.EveryoneLocal && !r.TCPLoopback {
		return out, errors.New("no selector: give at least one of uids, gids, certs, everyone_local or tcp_loopback")
	}
	for _, c := range r.Certs {
		switch {
		case c == "" || strings.TrimSpace(c) != c:
			return out, fmt.Errorf("certs: %q is not a certificate name (empty, or leading/trailing space)", c)
		case strings.Contains(c, "*"):
			return out, fmt.Errorf("certs: %q: wildcards are not supported; list certificate names", c)
		}
		out.certs = append(out.certs, c)
	}
	if out.role != RoleSigner {
		if len(r.Keys) > 0 || len(r.Domains) > 0 {
			return out, fmt.Errorf("keys and domains apply to role signer only (an admin may use every key; a verifier none), not to role %s", out.role)
		}
		return out, nil
	}
	if len(r.Keys) == 0 {
		return out, errors.New(`a signer rule needs "keys": key names, or "*" for every key`)
	}
	for _, k := range r.Keys {
		if k != "*" {
			if err := service.ValidateKeyName(k); err != nil {
				return out, fmt.Errorf("keys: %q is not a key name", k)
			}
		}
		out.keys = append(out.keys, k)
	}
	for _, d := range r.Domains {
		n := normalizeDomain(d)
		if n != "*" && (n == "" || len(n) > 253 || strings.ContainsAny(n, "/:@* \t\r\n")) {
			return out, fmt.Errorf("domains: %q is not a host name (or \"*\")", d)
		}
		out.domains = append(out.domains, n)
	}
	return out, nil
}

// policyFields and ruleFields are the field names of the policy object and
// of a rule, exactly as the format spells them.
var (
	policyFields = []string{"version", "rules"}
	ruleFields   = []string{"comment", "uids", "gids", "certs", "everyone_local", "tcp_loopback", "role", "keys", "domains"}
)

// checkFieldNames refuses a field given twice in one object (also when one
// spelling is escaped) and a field of the policy or of a rule spelt in
// another case. encoding/json would read both without a word: the last of
// repeated names wins and "Role" is read as "role", so a file that a
// reviewer, jq or Python reads as a verifier rule could be in force as an
// admin rule. data is known to be one valid JSON value.
func checkFieldNames(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	// where names the object for errors ("" for the policy object);
	// known is its field names (nil: values inside fields, not checked
	// for spelling, only for repeats).
	var walk func(where string, known []string) error
	walk = func(where string, known []string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		prefix := ""
		if where != "" {
			prefix = where + ": "
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				name, _ := kt.(string)
				if seen[name] {
					return fmt.Errorf("%sfield %q is given twice", prefix, name)
				}
				seen[name] = true
				if known != nil && !slices.Contains(known, name) {
					for _, k := range known {
						if strings.EqualFold(k, name) {
							return fmt.Errorf("%sfield %q is not a policy field (did you mean %q?)", prefix, name, k)
						}
					}
				}
				if known != nil && where == "" && name == "rules" {
					// The rules array: each element is a rule.
					if t, err := dec.Token(); err != nil {
						return err
					} else if t != json.Delim('[') {
						// Not an array: the decoder reports it.
						if d, ok := t.(json.Delim); ok && d == '{' {
							return errors.New(`"rules" must be a JSON array of rules`)
						}
						continue
					}
					for i := 0; dec.More(); i++ {
						if err := walk(fmt.Sprintf("rules[%d]", i), ruleFields); err != nil {
							return err
						}
					}
					if _, err := dec.Token(); err != nil { // ]
						return err
					}
					continue
				}
				if err := walk(where, nil); err != nil { // a field's value: repeats only
					return err
				}
			}
			_, err := dec.Token() // }
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(where, nil); err != nil {
					return err
				}
			}
			_, err := dec.Token() // ]
			return err
		}
		return nil
	}
	return walk("", policyFields)
}

// normalizeDomain makes DNS names comparable: lower case, no final dot.
func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// jsonError adds a line and column to a decoding error.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the offending byte itself.
		return fmt.Errorf("%s: not valid JSON: %w", position(data, syn.Offset-1), err)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("the policy must be a JSON object with version and rules, not a JSON %s", typ.Value)
	case errors.As(err, &typ):
		return fmt.Errorf("%s: field %q: cannot use a JSON %s as %s", position(data, typ.Offset), typ.Field, typ.Value, typ.Type)
	case errors.Is(err, io.EOF):
		return errors.New("empty: want a JSON object with version and rules")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: unexpected end of file", position(data, int64(len(data))))
	}
	// Unknown fields ("json: unknown field \"x\"") carry no offset type.
	return fmt.Errorf("%s: %w", position(data, dec.InputOffset()), err)
}

// ruleJSONError words a rule's decoding error (its syntax was already
// checked with the whole file).
func ruleJSONError(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "" {
			return fmt.Errorf("a rule must be a JSON object, not a JSON %s", typ.Value)
		}
		return fmt.Errorf("field %q: cannot use a JSON %s as %s", typ.Field, typ.Value, typ.Type)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// position renders a byte offset as line:column (from 1).
func position(data []byte, off int64) string {
	off = max(0, min(off, int64(len(data))))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// Len is the number of rules.
func (p *Policy) Len() int { return len(p.rules) }

// Digest is the lowercase hex SHA-256 of the policy file's bytes.
func (p *Policy) Digest() string { return p.digest }

// matches reports whether the rule selects the caller.
func (r *policyRule) matches(id Identity) bool {
	switch {
	case id.Unix:
		return r.everyoneLocal || slices.Contains(r.uids, id.UID) || slices.Contains(r.gids, id.GID)
	case id.TLS:
		for _, n := range id.Names {
			if slices.Contains(r.certs, n) {
				return true
			}
		}
	case id.Loopback:
		return r.tcpLoopback
	}
	return false
}

// allows reports why the rule does not allow a call needing role need with
// request req ("" when it does).
func (r *policyRule) allows(need Role, req any) string {
	if r.role < need {
		return fmt.Sprintf("role %s", r.role)
	}
	if r.role == RoleAdmin || need < RoleSigner {
		return ""
	}
	anyOf := func(list []string, v string) bool { return slices.Contains(list, "*") || slices.Contains(list, v) }
	switch q := req.(type) {
	case nil:
		// A streaming call is authorized at role level; its handler MUST
		// authorize each signing item with its request (SignBatch does).
		return ""
	case *signerv1.SignRequest:
		if !anyOf(r.keys, q.GetKeyName()) {
			return fmt.Sprintf("signer for keys %v", r.keys)
		}
		return ""
	case *signerv1.SignSkillRequest:
		if !anyOf(r.keys, q.GetKeyName()) {
			return fmt.Sprintf("signer for keys %v", r.keys)
		}
		if !anyOf(r.domains, normalizeDomain(q.GetDomain())) {
			return fmt.Sprintf("signer for skill domains %v", r.domains)
		}
		return ""
	}
	// A signing request this policy does not know how to scope: fail closed.
	return fmt.Sprintf("signer, which cannot be checked for %T", req)
}

// Authorize implements Authorizer.
func (p *Policy) Authorize(_ context.Context, id Identity, method string, req any) error {
	need, ok := methodRoles[method]
	if !ok {
		return errdefs.WithReason(errdefs.ReasonPermissionDenied,
			fmt.Errorf("%s: method %s is not allowed for anyone: %w", id.ID, method, errdefs.ErrPermissionDenied))
	}
	var why []string
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matches(id) {
			continue
		}
		reason := r.allows(need, req)
		if reason == "" {
			return nil
		}
		why = append(why, fmt.Sprintf("rules[%d]: %s", r.index, reason))
	}
	if len(why) == 0 {
		return errdefs.WithReason(errdefs.ReasonPermissionDenied,
			fmt.Errorf("%s may not call %s: no policy rule matches this caller: %w", id.ID, method, errdefs.ErrPermissionDenied))
	}
	return errdefs.WithReason(errdefs.ReasonPermissionDenied,
		fmt.Errorf("%s may not call %s%s (needs role %s; %s): %w", id.ID, method, scopeOf(req), need, strings.Join(why, "; "), errdefs.ErrPermissionDenied))
}

// scopeOf describes what a signing request asks for, for denial messages.
func scopeOf(req any) string {
	switch q := req.(type) {
	case *signerv1.SignRequest:
		return fmt.Sprintf(" with key %q", clipRequested(q.GetKeyName()))
	case *signerv1.SignSkillRequest:
		return fmt.Sprintf(" with key %q for domain %q", clipRequested(q.GetKeyName()), clipRequested(q.GetDomain()))
	}
	return ""
}

// clipRequested bounds a caller-chosen value quoted in a denial: the
// message is logged and audited, and a request may be up to the receive
// limit long.
func clipRequested(v string) string { return errdefs.Clip(v) }
