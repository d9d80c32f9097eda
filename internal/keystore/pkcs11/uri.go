package pkcs11

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/signerd/signerd/internal/errdefs"
)

// URI is the part of an RFC 7512 PKCS#11 URI that chooses a token, its
// module and where its PIN is read from. Values are percent-decoded.
type URI struct {
	Token        string // token= (CKA_LABEL of the token)
	Serial       string // serial=
	Model        string // model=
	Manufacturer string // manufacturer=
	ModulePath   string // module-path= (absolute)
	PINFile      string // pin-source= (a file: URI or an absolute path)
}

// uriMaxLen bounds what ParseURI reads: a URI naming a token is a few
// hundred bytes.
const uriMaxLen = 4096

// Attributes RFC 7512 defines that name something other than a token (an
// object, a slot or a library version), or carry the PIN itself: refused
// with a reason rather than ignored, since ignoring a selector could pick
// another token than the one meant.
var refusedAttrs = map[string]string{
	"object":               "names an object; signerd's URI chooses a token, keys are named by signerd",
	"id":                   "names an object; signerd's URI chooses a token, keys are named by signerd",
	"type":                 "names an object type; signerd's URI chooses a token",
	"slot-id":              "chooses a slot, whose number can change between starts; choose the token by token= and serial=",
	"slot-description":     "chooses a slot; choose the token by token= and serial=",
	"slot-manufacturer":    "chooses a slot; choose the token by token= and serial=",
	"library-manufacturer": "is not supported; give the library with module-path=",
	"library-description":  "is not supported; give the library with module-path=",
	"library-version":      "is not supported; give the library with module-path=",
	"pin-value":            "would put the PIN on the command line or in the environment; use pin-source=file:/path",
	"module-name":          "is not supported; give the library's absolute path with module-path=",
}

// ParseURI parses an RFC 7512 "pkcs11:" URI that chooses a token. It knows
// token, serial, model and manufacturer in the path and module-path and
// pin-source in the query; every other attribute, a repeated one, a bad
// percent-encoding or a relative path is an ErrInvalidArgument that names
// the problem. Error messages never repeat the query's values verbatim
// beyond the attribute names, so a mistyped PIN cannot reach a log.
func ParseURI(s string) (URI, error) {
	var u URI
	bad := func(format string, args ...any) (URI, error) {
		return URI{}, fmt.Errorf("PKCS#11 URI: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
	}
	if len(s) > uriMaxLen {
		return bad("longer than %d bytes", uriMaxLen)
	}
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return bad(`must start with "pkcs11:"`)
	}
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(query, "#") || strings.Contains(path, "#") {
		return bad("a fragment (#) is not allowed")
	}
	seen := map[string]bool{}
	set := func(part, attr, raw string) error {
		if reason, ok := refusedAttrs[attr]; ok {
			return errdefs.Sentence(errdefs.ErrInvalidArgument, "PKCS#11 URI: attribute %q %s", attr, reason)
		}
		if seen[attr] {
			return fmt.Errorf("PKCS#11 URI: attribute %q given twice: %w", truncate(attr), errdefs.ErrInvalidArgument)
		}
		seen[attr] = true
		v, err := url.PathUnescape(raw)
		if err != nil {
			return fmt.Errorf("PKCS#11 URI: attribute %q: bad percent-encoding: %w", attr, errdefs.ErrInvalidArgument)
		}
		if v == "" {
			return fmt.Errorf("PKCS#11 URI: attribute %q is empty: %w", attr, errdefs.ErrInvalidArgument)
		}
		switch {
		case part == "path" && attr == "token":
			u.Token = v
		case part == "path" && attr == "serial":
			u.Serial = v
		case part == "path" && attr == "model":
			u.Model = v
		case part == "path" && attr == "manufacturer":
			u.Manufacturer = v
		case part == "query" && attr == "module-path":
			if !filepath.IsAbs(v) {
				return fmt.Errorf("PKCS#11 URI: module-path must be an absolute path: %w", errdefs.ErrInvalidArgument)
			}
			u.ModulePath = filepath.Clean(v)
		case part == "query" && attr == "pin-source":
			p, ok := strings.CutPrefix(v, "file:")
			if ok {
				// file:/abs and file:///abs are both in use.
				p = strings.TrimPrefix(p, "//")
			} else if strings.Contains(v, ":") {
				return fmt.Errorf("PKCS#11 URI: pin-source must be a file: URI or an absolute path: %w", errdefs.ErrInvalidArgument)
			}
			if !filepath.IsAbs(p) {
				return fmt.Errorf("PKCS#11 URI: pin-source must name an absolute path: %w", errdefs.ErrInvalidArgument)
			}
			u.PINFile = filepath.Clean(p)
		default:
			where := map[string]string{"path": "path (before ?)", "query": "query (after ?)"}[part]
			return fmt.Errorf("PKCS#11 URI: unknown %s attribute %q (known: token, serial, model, manufacturer; module-path, pin-source after ?): %w",
				where, truncate(attr), errdefs.ErrInvalidArgument)
		}
		return nil
	}
	for _, p := range []struct {
		part string
		list []string
	}{{"path", splitNonEmpty(path, ";")}, {"query", splitNonEmpty(query, "&")}} {
		part := p.part
		for _, a := range p.list {
			attr, raw, ok := strings.Cut(a, "=")
			if !ok {
				return bad("%s attribute %q has no value (want name=value)", part, truncate(attr))
			}
			if err := set(part, strings.ToLower(attr), raw); err != nil {
				return URI{}, err
			}
		}
	}
	if u.Token == "" && u.Serial == "" {
		return bad("choose the token with token= or serial= (or both)")
	}
	// The bound holds for u's canonical form too, so that String() reads
	// back: raw bytes that String percent-encodes triple in length.
	if len(u.String()) > uriMaxLen {
		return bad("longer than %d bytes once percent-encoded", uriMaxLen)
	}
	return u, nil
}

// String formats u as a PKCS#11 URI that ParseURI reads back as u.
func (u URI) String() string {
	var path, query []string
	for _, a := range []struct{ name, v string }{
		{"token", u.Token}, {"serial", u.Serial}, {"model", u.Model}, {"manufacturer", u.Manufacturer},
	} {
		if a.v != "" {
			path = append(path, a.name+"="+escapeURIValue(a.v))
		}
	}
	if u.ModulePath != "" {
		query = append(query, "module-path="+escapeURIValue(u.ModulePath))
	}
	if u.PINFile != "" {
		query = append(query, "pin-source="+escapeURIValue("file:"+u.PINFile))
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escapeURIValue percent-encodes all but RFC 3986's unreserved characters
// and '/' and ':', which paths and file: URIs keep readable.
func escapeURIValue(v string) string {
	var b strings.Builder
	for _, c := range []byte(v) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-._~/:", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func splitNonEmpty(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

// truncate keeps error messages short whatever the input.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
