package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/signerd/signerd/internal/skill"
)

// LookupTXT looks up the _schemapin TXT record of domain (spec §7) with the
// Fetcher's resolver and returns the first value containing
// "v=schemapin1", chunks of one record already joined. found is false when
// the name does not exist, has no TXT records, or none of them is a
// SchemaPin record: upstream treats all three as "absent", which has no
// effect on verification. Any other failure (timeout, SERVFAIL, refused)
// is an error, so that a caller who asked for the DNS cross-check can fail
// closed instead of mistaking an unreachable resolver for an absent record.
//
// The name is looked up fully qualified ("_schemapin.example.com."), so the
// resolver's search list never turns it into a name in another zone.
// The value is not parsed here: skill.VerifyOffline parses it and reports a
// malformed record as discovery_invalid.
func (f *Fetcher) LookupTXT(ctx context.Context, domain string) (value string, found bool, err error) {
	name := skill.DNSTXTName(domain) + "."
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	values, err := f.resolver.LookupTXT(ctx, name)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return "", false, nil
		}
		return "", false, fmt.Errorf("DNS TXT lookup of %s failed: %w", name, err)
	}
	value, found = skill.SelectDNSTXT(values)
	return value, found, nil
}
