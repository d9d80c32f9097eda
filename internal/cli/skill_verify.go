package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/skill"
	"github.com/signerd/signerd/internal/skill/resolve"
)

// warnRevocationEndpointNotChecked is added to a valid result verified
// from a discovery document on disk that names a revocation_endpoint when
// no --revocation FILE was given: offline verification fetches nothing, so
// it says what it did not check rather than pretending it did.
const warnRevocationEndpointNotChecked = "revocation_endpoint_not_checked"

// Where the verifying key came from (key_source in -o json).
const (
	keySourcePublicKey     = "public_key"
	keySourceDiscoveryFile = "discovery_file"
	keySourceWellKnown     = "well_known"
)

// skillVerifyOutput is the -o json shape of signctl skill verify: the
// upstream result object (valid, domain, developer_name, key_pinning,
// error_code, error_message, warnings, expired, expires_at, schema_version,
// previous_hash) plus digest_convention, exactly as skill.Result marshals,
// followed by what signctl adds: the UPPER_SNAKE reason every signctl
// verify prints (CONTRACT.md) and where each piece of trust came from.
type skillVerifyOutput struct {
	*skill.Result
	Reason            string   `json:"reason,omitempty"`
	Dir               string   `json:"dir"`
	KeyFingerprint    string   `json:"key_fingerprint,omitempty"`
	SkillHash         string   `json:"skill_hash,omitempty"`
	ToolID            string   `json:"tool_id,omitempty"`
	KeySource         string   `json:"key_source"`
	DiscoveryURL      string   `json:"discovery_url,omitempty"`
	RevocationSources []string `json:"revocation_sources,omitempty"`
	// DNSTXT is the record that was checked, or "absent" when --dns found
	// none; empty when DNS played no part.
	DNSTXT          string `json:"dns_txt,omitempty"`
	PinStore        string `json:"pin_store,omitempty"`
	PinStoreUpdated bool   `json:"pin_store_updated,omitempty"`

	// For text output only.
	domain             string
	keyFile            string
	revocationEndpoint string
}

type skillVerifyOpts struct {
	domain     string
	publicKey  string
	discovery  string
	signature  string
	revocation string
	pinStore   string
	toolID     string
	dnsTXT     string
	dns        bool
	digest     string
	online     bool
	// allowPrivate lets the fetches reach loopback, private and
	// link-local addresses (resolve.AllowPrivateAddresses).
	allowPrivate bool
}

func newSkillVerifyCommand(g *globals) *cobra.Command {
	var opts skillVerifyOpts
	cmd := &cobra.Command{
		Use:   "verify DIR --domain DOMAIN [--public-key PEM | --discovery FILE] [flags]",
		Short: "Verify a skill folder's .schemapin.sig",
		Long: `Verify a skill folder's SchemaPin signature (.schemapin.sig), as upstream's
VerifySkillOffline does, with safer defaults that reject no valid upstream
signature.

The key of DOMAIN comes from exactly one place:
  --public-key PEM    a P-256 SPKI public key on disk;
  --discovery FILE    the domain's .well-known/schemapin.json on disk (its
                      revoked_keys and developer_name are used);
  neither             https://DOMAIN/.well-known/schemapin.json is fetched
                      (HTTPS only, 10 s timeout, 256 KiB limit, redirects
                      only within DOMAIN), and so is the revocation document
                      its revocation_endpoint names. A named revocation
                      document that cannot be fetched fails verification
                      (fail closed). Verification from files fetches nothing;
                      a discovery file naming a revocation_endpoint then
                      yields the warning revocation_endpoint_not_checked
                      unless --revocation FILE is given.

Checks, in order: the signature document; its canonicalization id; the key;
revocation (the discovery document's revoked_keys, --revocation FILE and any
fetched document); the pin store (key_pin_mismatch when the tool's pinned key
differs); the folder's root hash against the signature, in either digest
convention unless --digest requires one (upstream Go signs the root itself,
Python/JS/Rust SHA-256 of it); the signature's domain claim against --domain
(upstream does not check this); the DNS TXT record when --dns-txt or --dns is
given (absent: no effect; present and different: domain_mismatch). Only then
is a new key pinned: with --pin-store FILE (a missing file is an empty store)
the first verified key of TOOL@DOMAIN is recorded and FILE rewritten
atomically.

--online asks signerd instead: it verifies with the key it signed the skill
with and compares the document's unauthenticated claims (domain, expires_at,
previous_hash, schema_version, skill_name, signed_at, signer_kid) with its
record of what it signed; an edit fails with error_code metadata_edited.

An expired signature still verifies, with the warning signature_expired:
expires_at is not covered by the signature, so expiry is advisory (as
upstream).

Exit codes: 0 valid; 1 not valid (error_code says why, e.g. signature_invalid,
key_revoked, key_pin_mismatch, domain_mismatch, discovery_fetch_failed when
the key, the revocation document or the DNS record could not be fetched);
2 bad usage or input: DIR not a folder, a file that cannot be read, a
malformed .schemapin.sig, public key, discovery, revocation, pin store or
--dns-txt value.`,
		Example: `  # Offline, with the publisher's public key
  signctl skill verify ./my-skill --domain example.com --public-key example.pub.pem

  # Offline, with a discovery and a revocation document, requiring SHA-256(root)
  signctl skill verify ./my-skill --domain example.com \
      --discovery schemapin.json --revocation revocations.json --digest sha256

  # Online: fetch https://example.com/.well-known/schemapin.json, cross-check DNS,
  # and pin the key on first use
  signctl skill verify ./my-skill --domain example.com --dns --pin-store ~/.schemapin/pins.json -o json`,
		Args: exactArgs(1, "exactly one skill folder DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSkillVerify(cmd, g, &opts, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.domain, "domain", "", "the signing domain whose key verifies (required); compared with the signature's domain claim")
	f.StringVar(&opts.publicKey, "public-key", "", "verify with this P-256 SPKI PEM public key file")
	f.StringVar(&opts.discovery, "discovery", "", "verify with this discovery document (.well-known/schemapin.json) file")
	f.StringVar(&opts.signature, "signature", "", "the signature document (default DIR/.schemapin.sig)")
	f.StringVar(&opts.revocation, "revocation", "", "a standalone revocation document file; a key it lists fails verification")
	f.StringVar(&opts.pinStore, "pin-store", "", "TOFU pin store JSON file, created if missing, updated after a successful first use")
	f.StringVar(&opts.toolID, "tool-id", "", "the pin store's tool id (default the signature's skill_name, then the folder name)")
	f.StringVar(&opts.dnsTXT, "dns-txt", "", "a _schemapin TXT value to cross-check, e.g. 'v=schemapin1; fp=sha256:...'")
	f.BoolVar(&opts.dns, "dns", false, "look up the _schemapin.DOMAIN TXT record and cross-check it")
	f.StringVar(&opts.digest, "digest", string(skill.DigestAny), "digest convention to accept: any, sha256 (Python/JS/Rust) or go")
	f.BoolVar(&opts.allowPrivate, "allow-private-endpoints", false, "let the discovery and revocation fetches connect to loopback, private and link-local addresses (refused by default: a domain's documents are public)")
	f.BoolVar(&opts.online, "online", false, "verify through signerd: with the key it signed with, and report metadata (domain, expiry, lineage) edited since it signed")
	return cmd
}

func runSkillVerify(cmd *cobra.Command, g *globals, opts *skillVerifyOpts, dir string) error {
	if err := required(cmd, "domain"); err != nil {
		return err
	}
	if err := checkDomainFlag(opts.domain); err != nil {
		return err
	}
	if opts.online {
		return runSkillVerifyOnline(cmd, g, opts, dir)
	}
	if opts.publicKey != "" && opts.discovery != "" {
		return exitErr(ExitUsage, errors.New("give --public-key or --discovery, not both (neither: fetch https://DOMAIN/.well-known/schemapin.json)"))
	}
	dnsTXTGiven := cmd.Flags().Changed("dns-txt")
	if opts.dns && dnsTXTGiven {
		return exitErr(ExitUsage, errors.New("give --dns-txt VALUE or --dns, not both"))
	}
	digest, err := skill.ParseDigestConvention(opts.digest)
	if err != nil {
		return exitErr(ExitUsage, fmt.Errorf("--digest: %w (want any, sha256 or go)", err))
	}
	if err := skillDirArg(dir); err != nil {
		return err
	}
	ctx, cancel := g.ctx(cmd.Context())
	defer cancel()

	out := &skillVerifyOutput{Dir: dir, PinStore: opts.pinStore, domain: opts.domain}
	in := skill.VerifyInput{Dir: dir, Domain: opts.domain, ToolID: opts.toolID, Options: skill.VerifyOptions{Digest: digest}}

	// Everything on disk first, so that bad input is exit 2 before any
	// network traffic.
	switch {
	case opts.publicKey != "":
		pem, err := readSmallFile(opts.publicKey, maxSkillDocSize)
		if err != nil {
			return err
		}
		if _, err := skill.ParsePublicKeyPEM(pem); err != nil {
			return exitErr(ExitUsage, fmt.Errorf("--public-key %s: %w (want a P-256 \"PUBLIC KEY\" PEM)", opts.publicKey, err))
		}
		in.PublicKeyPEM, out.KeySource, out.keyFile = pem, keySourcePublicKey, opts.publicKey
	case opts.discovery != "":
		data, err := readSmallFile(opts.discovery, maxSkillDocSize)
		if err != nil {
			return err
		}
		d, err := skill.ParseDiscovery(data)
		if err != nil {
			return exitErr(ExitUsage, fmt.Errorf("--discovery %s: %w", opts.discovery, err))
		}
		// A document without a usable key is upstream's discovery_invalid
		// verdict, left to VerifyOffline.
		in.Discovery, out.KeySource, out.keyFile = d, keySourceDiscoveryFile, opts.discovery
	default:
		out.KeySource = keySourceWellKnown
	}
	var localRev *skill.RevocationDocument
	if opts.revocation != "" {
		data, err := readSmallFile(opts.revocation, maxSkillDocSize)
		if err != nil {
			return err
		}
		if localRev, err = skill.ParseRevocation(data); err != nil {
			return exitErr(ExitUsage, fmt.Errorf("--revocation %s: %w; a revocation document that cannot be read never counts as empty", opts.revocation, err))
		}
		in.RevocationJSON = data
		out.RevocationSources = append(out.RevocationSources, opts.revocation)
	}
	if dnsTXTGiven {
		if _, err := skill.ParseDNSTXT(opts.dnsTXT); err != nil {
			return exitErr(ExitUsage, fmt.Errorf("--dns-txt: %w (want e.g. 'v=schemapin1; fp=sha256:<hex>')", err))
		}
		in.DNSTXT, out.DNSTXT = opts.dnsTXT, opts.dnsTXT
	}
	pins, pinMode, err := loadPinStore(opts.pinStore)
	if err != nil {
		return err
	}
	in.PinStore = pins

	sig, err := loadVerifySignature(&in, opts.signature)
	if err != nil {
		return err
	}
	// Fetch only for a signature that parsed: for a missing or malformed
	// one, VerifyOffline's verdict does not depend on the key.
	if sig != nil {
		failed, err := resolveSkillTrust(ctx, opts, &in, out, sig, localRev)
		if err != nil {
			return err
		}
		if failed != nil {
			return reportSkillVerify(g, out, failed)
		}
	}

	res, err := skill.VerifyOffline(ctx, in)
	if err != nil {
		return err // bad input (exit 2) or cancelled
	}
	if res.Valid && in.Discovery != nil && out.KeySource == keySourceDiscoveryFile &&
		strings.TrimSpace(in.Discovery.RevocationEndpoint) != "" && opts.revocation == "" {
		res.Warnings = append(res.Warnings, warnRevocationEndpointNotChecked)
		out.revocationEndpoint = in.Discovery.RevocationEndpoint
	}
	if res.Valid && res.KeyPinning != nil && res.KeyPinning.Status == skill.PinFirstUse && opts.pinStore != "" {
		data, err := pins.Encode()
		if err == nil {
			err = writeFileAtomic(opts.pinStore, data, pinMode)
		}
		if err != nil {
			return exitErr(ExitUsage, fmt.Errorf("%s verified, but the key was NOT pinned: %w", dir, err))
		}
		out.PinStoreUpdated = true
	}
	return reportSkillVerify(g, out, res)
}

// loadVerifySignature puts the signature into in and returns it parsed, or
// nil when it is missing or malformed: VerifyOffline then reports it
// (signature_invalid, SIGNATURE_NOT_FOUND → exit 1, MALFORMED_SIGNATURE →
// exit 2) with upstream's messages. A --signature FILE that cannot be read
// at all is bad input right away.
func loadVerifySignature(in *skill.VerifyInput, path string) (*skill.Signature, error) {
	if path == "" {
		sig, err := skill.LoadSignature(in.Dir)
		if err != nil {
			return nil, nil
		}
		in.Signature = sig
		return sig, nil
	}
	data, err := readSmallFile(path, maxSkillSignatureSize)
	if err != nil {
		return nil, err
	}
	sig, err := skill.ParseSignature(data)
	if err != nil {
		in.SignatureJSON = data
		return nil, nil
	}
	in.Signature = sig
	return sig, nil
}

// loadPinStore reads the pin store at path. A missing file is an empty
// store (the first verification creates it); anything unreadable or
// malformed is an error, never an empty store, which would re-trust every
// key. It also returns the mode to write the file back with.
func loadPinStore(path string) (*skill.PinStore, os.FileMode, error) {
	if path == "" {
		return nil, 0, nil
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return skill.NewPinStore(), 0o600, nil
	}
	if err != nil {
		return nil, 0, exitErr(ExitUsage, fmt.Errorf("--pin-store: %w", err))
	}
	data, err := readSmallFile(path, maxPinStoreSize)
	if err != nil {
		return nil, 0, err
	}
	pins, err := skill.ParsePinStore(data)
	if err != nil {
		return nil, 0, exitErr(ExitUsage, fmt.Errorf("--pin-store %s: %w; fix or move the file (a missing file starts an empty store)", path, err))
	}
	return pins, st.Mode().Perm(), nil
}

// resolveSkillTrust fetches what the flags ask for from the network: the
// discovery and revocation documents when no key was given on disk, and
// the DNS TXT record with --dns. It fills in and out, and returns a failed
// result when something could not be fetched: fail closed, upstream's
// discovery_fetch_failed (exit 1). Only a cancelled command is an error.
func resolveSkillTrust(ctx context.Context, opts *skillVerifyOpts, in *skill.VerifyInput, out *skillVerifyOutput,
	sig *skill.Signature, localRev *skill.RevocationDocument) (*skill.Result, error) {
	wellKnown := out.KeySource == keySourceWellKnown
	if !wellKnown && !opts.dns {
		return nil, nil
	}
	domain := sig.Domain
	if domain == "" {
		domain = opts.domain
	}
	failed := func(format string, args ...any) (*skill.Result, error) {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, ctx.Err() // interrupted: not a verdict
		}
		return &skill.Result{Domain: domain, ErrorCode: skill.CodeDiscoveryFetchFailed, ErrorMessage: fmt.Sprintf(format, args...)}, nil
	}
	fopts := append([]resolve.Option(nil), skillFetcherOptions...)
	if opts.allowPrivate {
		fopts = append(fopts, resolve.AllowPrivateAddresses())
	}
	f := resolve.New(fopts...)
	defer f.CloseIdleConnections()
	if wellKnown {
		res, err := f.Resolve(ctx, opts.domain)
		if err != nil {
			var fe *resolve.FetchError
			if errors.As(err, &fe) && fe.Document == resolve.DocRevocation {
				return failed("Revocation document unreachable (fail-closed): %v", err)
			}
			return failed("Could not resolve discovery for domain: %s: %v", opts.domain, err)
		}
		in.Discovery = res.Discovery
		out.DiscoveryURL = res.DiscoveryURL
		if res.Revocation != nil {
			out.RevocationSources = append(out.RevocationSources, res.RevocationURL)
			in.RevocationJSON = res.RevocationJSON
			if localRev != nil {
				// Both apply: one document listing the keys of both can
				// only revoke more than either.
				merged := *localRev
				merged.RevokedKeys = append(append([]skill.RevokedKey(nil), localRev.RevokedKeys...), res.Revocation.RevokedKeys...)
				data, err := merged.Encode()
				if err != nil {
					return nil, err
				}
				in.RevocationJSON = data
			}
		}
	}
	if opts.dns {
		v, found, err := f.LookupTXT(ctx, opts.domain)
		if err != nil {
			return failed("%v (fail-closed: --dns asked for the cross-check)", err)
		}
		if found {
			in.DNSTXT, out.DNSTXT = v, v
		} else {
			out.DNSTXT = "absent"
		}
	}
	return nil, nil
}

// reportSkillVerify prints the result and turns it into the exit code: 0
// valid, 2 for a malformed signature document (bad input, as signctl
// verify), 1 for every other failure.
func reportSkillVerify(g *globals, out *skillVerifyOutput, res *skill.Result) error {
	out.Result = res
	out.KeyFingerprint, out.SkillHash, out.ToolID = res.KeyFingerprint, res.SkillHash, res.ToolID
	verr := res.Err()
	if v, ok := errdefs.AsVerification(verr); ok {
		out.Reason = string(v.Reason)
	}
	if g.json() {
		if err := printJSON(g.stdout, out); err != nil {
			return err
		}
	} else if res.Valid {
		printSkillVerifyOK(g.stdout, out)
	} else {
		printSkillVerifyFailed(g.stderr, out)
	}
	switch {
	case res.Valid:
		return nil
	case res.ErrorCode == skill.CodeSignatureInvalid && out.Reason == string(errdefs.ReasonMalformedSignature):
		return &exitError{code: ExitUsage, err: verr, reported: true}
	default:
		return &exitError{code: ExitVerifyFail, err: verr, reported: true}
	}
}

func printSkillVerifyOK(w io.Writer, out *skillVerifyOutput) {
	r := out.Result
	printf(w, "OK: %s verified: signed for %s by %s (%s digest convention)\n", out.Dir, out.domain, out.KeyFingerprint, r.DigestConvention)
	printPathOrder(w, r)
	if r.DeveloperName != "" {
		printf(w, "  developer:  %s\n", r.DeveloperName)
	}
	switch out.KeySource {
	case keySourceWellKnown:
		printf(w, "  key from:   %s\n", out.DiscoveryURL)
	case keySourcePublicKey:
		printf(w, "  key from:   public key %s\n", out.keyFile)
	case keySourceDiscoveryFile:
		printf(w, "  key from:   discovery document %s\n", out.keyFile)
	}
	if len(out.RevocationSources) > 0 {
		printf(w, "  revocation: checked %s\n", strings.Join(out.RevocationSources, ", "))
	}
	switch out.DNSTXT {
	case "":
	case "absent":
		printf(w, "  DNS TXT:    none published at %s (no effect)\n", skill.DNSTXTName(out.domain))
	default:
		printf(w, "  DNS TXT:    matches (%s)\n", out.DNSTXT)
	}
	if r.KeyPinning != nil {
		key := out.ToolID + "@" + out.pinDomain()
		if r.KeyPinning.Status == skill.PinFirstUse {
			printf(w, "  pin:        first use of %s; key pinned in %s\n", key, out.PinStore)
		} else {
			printf(w, "  pin:        matches the key pinned for %s\n", key)
		}
	}
	if r.SchemaVersion != "" || r.PreviousHash != "" {
		printf(w, "  lineage:    schema_version %q, previous_hash %q (check with signctl skill chain)\n", r.SchemaVersion, r.PreviousHash)
	}
	printSkillWarnings(w, out)
}

// printSkillWarnings lists a valid result's warnings, explained, and the
// folder's entries the signature does not cover.
func printSkillWarnings(w io.Writer, out *skillVerifyOutput) {
	r := out.Result
	for _, warn := range r.Warnings {
		if why := explainSkillWarning(warn, out); why != "" {
			printf(w, "  warning:    %s: %s\n", warn, why)
		} else {
			printf(w, "  warning:    %s\n", warn)
		}
	}
	for _, p := range r.Unsigned {
		printf(w, "  unsigned:   %s\n", p)
	}
}

func printSkillVerifyFailed(w io.Writer, out *skillVerifyOutput) {
	r := out.Result
	code := string(r.ErrorCode)
	if code == "" {
		code = out.Reason
	}
	printf(w, "FAILED: %s: %s: %s\n", out.Dir, code, r.ErrorMessage)
	printTamperReport(w, r)
	switch {
	case r.Hint != "":
		printf(w, "  %s\n", r.Hint)
	case out.Reason == string(errdefs.ReasonPackageTampered):
		printf(w, "  the folder's content differs from its signed manifest; list the changes with: signctl skill tampered %s\n", out.Dir)
	case r.ErrorCode == skill.CodeKeyPinMismatch:
		printf(w, "  %s@%s is pinned to another key in %s; if the publisher rotated its key on purpose, remove that entry and verify again\n",
			out.ToolID, out.pinDomain(), out.PinStore)
	case r.ErrorCode == skill.CodeDiscoveryFetchFailed:
		printf(w, "  nothing was trusted; check the domain's HTTPS and DNS, or verify offline with --public-key or --discovery (and --revocation)\n")
	}
}

// pinDomain is the domain half of the pin store key, as VerifyOffline
// forms it: the signature's domain claim, else --domain.
func (o *skillVerifyOutput) pinDomain() string {
	if o.Result != nil && o.Result.Domain != "" {
		return o.Result.Domain
	}
	return o.domain
}

func explainSkillWarning(w string, out *skillVerifyOutput) string {
	switch w {
	case skill.WarningSignatureExpired:
		return fmt.Sprintf("expired at %s; still valid, because expires_at is not covered by the signature (as upstream)", out.ExpiresAt)
	case skill.WarningExpiresAtUnparseable:
		return "expires_at is not an RFC 3339 time and was ignored"
	case skill.WarningSkillHashMismatch:
		return "skill_hash matches neither convention for this folder's root; a previous_hash chain built on it will not link"
	case skill.WarningSignerKidMismatch:
		return "signer_kid names a different key than the one that verified"
	case skill.WarningSignatureEncoding:
		return "the signature's DER encoding is not canonical (accepted, as upstream Go does)"
	case skill.WarningUnsignedEntries:
		what := "entries in the folder are"
		if len(out.Result.Unsigned) == 1 {
			what = "entry in the folder is"
		}
		return fmt.Sprintf("%d %s not covered by the signature (symlinks or nested %s files, which SchemaPin leaves out, or FIFOs, sockets and devices, which signerd never opens): whatever they are or point to verifies; do not follow or run them",
			len(out.Result.Unsigned), what, skill.SignatureFilename)
	case warnRevocationEndpointNotChecked:
		return fmt.Sprintf("the discovery document names revocation_endpoint %s, which verification from files does not fetch; download it and pass --revocation FILE", out.revocationEndpoint)
	}
	return ""
}

// printPathOrder says so when a skill verified only with the JavaScript
// SDK's path order.
func printPathOrder(w io.Writer, r *skill.Result) {
	if r.PathOrder == skill.PathOrderUTF16 {
		printf(w, "  paths:      in UTF-16 code unit order, as the JavaScript SDK sorts them (the specification's UTF-8 byte order gives another root for this folder)\n")
	}
}

// printTamperReport lists the files that differ from the signed manifest.
func printTamperReport(w io.Writer, r *skill.Result) {
	if r.Tampered == nil {
		return
	}
	for _, l := range []struct {
		what  string
		paths []string
	}{{"added", r.Tampered.Added}, {"removed", r.Tampered.Removed}, {"modified", r.Tampered.Modified}} {
		for _, p := range l.paths {
			printf(w, "  %-9s %s\n", l.what+":", p)
		}
	}
}
