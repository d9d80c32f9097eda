package softhsmtest

import (
	"context"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/store"
)

// TestRefusalFlood: a flood of refused calls from one uid — Verify for an
// org nobody configured, Verify of a signature the org does not trust,
// and (as uid 65534) denied key creations — grows the database by a
// bounded amount: per caller and reason the first 10 of each window are
// written in full and the rest counted in an aggregate record, and the
// full records plus the aggregate counts add up to the calls made. A Sign
// made during the flood is recorded as usual, and the audit chain stays
// intact. Short here (20,000 refusals); 60 s of flooding under make soak.
func TestRefusalFlood(t *testing.T) {
	d := startDaemon(t, "--socket-mode", "0666")
	key, org, _ := relPrepare(t, d)
	mustSignctl(t, d, "key", "create", "stranger", "--algorithm", "ed25519")
	c := relDial(t, d)
	ctx := context.Background()
	// A signature by a key acme does not trust.
	strangerDigest := relDigest()
	untrusted, err := c.Signer.Sign(ctx, &signerv1.SignRequest{KeyName: "stranger", Digest: strangerDigest, ArtifactName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	strangerDoc := untrusted.GetSignatureDocument()
	st, err := os.Stat(d.db)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := st.Size()

	const workers = 16
	perWorker := 20_000 / workers
	deadline := time.Time{}
	if relSoak() {
		deadline = time.Now().Add(60 * time.Second)
	}
	var unknown, untrustedN atomic.Int64
	refused := func() int64 { return unknown.Load() + untrustedN.Load() }
	// The Sign must happen during the flood, which is proved by counts,
	// not times: it starts only after refusalsBefore refusals while the
	// workers run, and the workers do not stop (even with their share
	// done) until refusalsAfter more refusals follow its return. keepUntil
	// is that total, unknown (max) until the Sign has returned.
	const refusalsBefore, refusalsAfter = 200, 200
	var keepUntil, running atomic.Int64
	keepUntil.Store(math.MaxInt64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			more := func(i int) bool {
				if deadline.IsZero() && i < perWorker || !deadline.IsZero() && time.Now().Before(deadline) {
					return true
				}
				return refused() < keepUntil.Load()
			}
			for i := 0; more(i); i++ {
				var err error
				if (w+i)%2 == 0 {
					_, err = c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: "made-up-" + strconv.Itoa(w) + "-" + strconv.Itoa(i), Digest: relDigest()})
					if relReason(err) != "UNKNOWN_ORG" {
						t.Errorf("Verify for a made-up org: %v", err)
						return
					}
					unknown.Add(1)
				} else {
					_, err = c.Signer.Verify(ctx, &signerv1.VerifyRequest{Org: org, Digest: strangerDigest, SignatureDocument: strangerDoc})
					if relReason(err) != "UNTRUSTED_SIGNER" {
						t.Errorf("Verify of an untrusted signature: %v", err)
						return
					}
					untrustedN.Add(1)
				}
			}
		}()
	}
	// A Sign during the flood is recorded as usual.
	signed := writeFile(t, t.TempDir(), "during-flood.so", []byte("signed during the flood"))
	for refused() < refusalsBefore && running.Load() > 0 {
		time.Sleep(time.Millisecond) // a poll of the count, not a deadline
	}
	beforeSign := refused()
	if beforeSign < refusalsBefore {
		wg.Wait()
		t.Fatalf("the flood stopped after %d refusals, before the Sign", beforeSign)
	}
	mustSignctl(t, d, "sign", signed, "--key", key)
	afterSign := refused()
	keepUntil.Store(afterSign + refusalsAfter)
	denials := 0
	if os.Geteuid() == 0 {
		traversable(t, d.socket)
		for range 15 {
			expectExit(t, signctlAsNobody(t, d, "key", "create", "mine", "--algorithm", "ed25519"), 4, "nobody creates a key")
			denials++
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if end := refused(); beforeSign < refusalsBefore || end < afterSign+refusalsAfter {
		t.Fatalf("the Sign was not made during the flood: %d refusals before it started, %d when it returned, %d in all; want %d before and %d more after",
			beforeSign, afterSign, end, refusalsBefore, refusalsAfter)
	}
	t.Logf("the Sign started after %d refusals and returned after %d; the flood went on to %d", beforeSign, afterSign, refused())
	recs := auditLog(t, d) // stops the daemon: the last window is flushed
	st, err = os.Stat(d.db)
	if err != nil {
		t.Fatal(err)
	}
	growth := st.Size() - sizeBefore
	got := map[string]int64{}
	var signRecorded bool
	aggregates := 0
	for _, r := range recs {
		if r.Operation == "sign" && strings.Contains(r.Detail+r.Key, key) {
			signRecorded = true
		}
		if r.Operation == service.AggregateOperation {
			aggregates++
			got[r.Caller+" "+r.Outcome] += aggregateCount(t, r)
			continue
		}
		if isRefusal(r) {
			got[r.Caller+" "+r.Outcome]++
		}
	}
	want := map[string]int64{"uid:0 UNKNOWN_ORG": unknown.Load(), "uid:0 UNTRUSTED_SIGNER": untrustedN.Load()}
	if denials > 0 {
		want[nobodyID+" denied"] = int64(denials)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: the audit log accounts for %d refusals, %d were made", k, got[k], n)
		}
	}
	calls := unknown.Load() + untrustedN.Load() + int64(denials)
	t.Logf("%d refused calls: %d audit records in all, %d aggregates; database grew %d KiB", calls, len(recs), aggregates, growth>>10)
	if growth > 1<<20 {
		t.Errorf("the database grew %d KiB for %d refused calls, want at most 1 MiB", growth>>10, calls)
	}
	if !signRecorded {
		t.Error("the Sign made during the flood has no audit record")
	}
	// Restarted, the daemon finds the chain intact, aggregates included,
	// and lists them readably.
	d.start(t)
	if r := mustSignctl(t, d, "audit", "verify"); !strings.HasPrefix(r.stdout, "OK") {
		t.Fatalf("audit verify after the flood: %s", r.stdout)
	}
	list := mustSignctl(t, d, "audit", "list").stdout
	if aggregates == 0 || !strings.Contains(list, service.AggregateOperation) || !strings.Contains(list, "count=") {
		t.Errorf("no aggregate in signctl audit list:\n%s", list)
	}
}

// isRefusal reports whether r is the full record of a refused call.
func isRefusal(r store.AuditRecord) bool {
	return r.Outcome == "denied" || (r.Operation == "verify" || r.Operation == "skill.verify") && r.Outcome != "ok"
}

// aggregateCount is the count an aggregate refusal record carries.
func aggregateCount(t *testing.T, r store.AuditRecord) int64 {
	t.Helper()
	f, _, _ := strings.Cut(r.Detail, " ")
	n, err := strconv.ParseInt(strings.TrimPrefix(f, "count="), 10, 64)
	if err != nil || !strings.HasPrefix(f, "count=") {
		t.Fatalf("aggregate record without a count: %q", r.Detail)
	}
	return n
}
