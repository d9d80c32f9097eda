package softhsmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestAuditVerifyDamagedFile: a truncated or byte-flipped copy of a real
// database is reported BROKEN (exit 1) by signctl audit verify --db, with
// what could still be read; bbolt's panics and faults on damaged pages
// never escape (they used to: a Go panic, exit 2). A file that was never a
// database stays bad input (exit 2).
func TestAuditVerifyDamagedFile(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	mustSignctl(t, d, "key", "create", "release", "--algorithm", "ed25519")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	for i := range 20 {
		pkg := writeFile(t, dir, fmt.Sprintf("p%d.so", i), []byte(strings.Repeat(fmt.Sprintf("package %d ", i), 50)))
		mustSignctl(t, d, "sign", pkg, "--key", "release")
	}
	pubFile := writeFile(t, dir, "audit.pub.pem", []byte(mustSignctl(t, d, "audit", "public-key").stdout))
	if err := d.stop(t); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, d.logs.String())
	}
	golden := filepath.Join(dir, "golden.db")
	auditCopy(t, d.db, golden)
	mustSignctl(t, nil, "audit", "verify", "--db", golden, "--audit-key", pubFile)
	src, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	pageSize, used := dbPages(t, golden)

	verify := func(t *testing.T, data []byte) result {
		t.Helper()
		path := filepath.Join(t.TempDir(), "damaged.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := signctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile)
		if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "fault") {
			t.Fatalf("signctl crashed: exit %d\n%s", r.code, r.stderr)
		}
		return r
	}
	wantBroken := func(t *testing.T, data []byte, what string) {
		t.Helper()
		r := verify(t, data)
		if r.code != 1 || !strings.HasPrefix(r.stdout, "BROKEN: database file ") || strings.Contains(r.stdout, "damaged file") || !strings.Contains(r.stdout, what) ||
			!strings.Contains(r.stdout, "audit record") {
			t.Fatalf("exit %d, want 1, BROKEN naming %q and what could be read\nstdout: %s\nstderr: %s", r.code, what, r.stdout, r.stderr)
		}
		// Each finding is said once (the file check and bbolt's open can
		// both find it).
		seen := map[string]bool{}
		for _, part := range strings.Split(strings.TrimSpace(r.stdout), "; ") {
			if seen[part] {
				t.Fatalf("%q is said twice:\n%s", part, r.stdout)
			}
			seen[part] = true
		}
		path := filepath.Join(t.TempDir(), "damaged.db")
		os.WriteFile(path, data, 0o600)
		j := signctl(t, nil, "audit", "verify", "--db", path, "--audit-key", pubFile, "-o", "json")
		p, _ := j.json(t)["problem"].(map[string]any)
		if j.code != 1 || p == nil || p["kind"] != "damaged file" || j.json(t)["intact"] != false {
			t.Fatalf("-o json: exit %d %s", j.code, j.stdout)
		}
	}

	for _, n := range []int64{100, pageSize, 2 * pageSize, 3 * pageSize, int64(len(src)) / 2, used*pageSize - 1} {
		t.Run(fmt.Sprintf("truncated to %d bytes", n), func(t *testing.T) {
			wantBroken(t, src[:n], "truncated")
		})
	}
	for meta := range int64(2) {
		t.Run(fmt.Sprintf("meta page %d flipped", meta), func(t *testing.T) {
			b := append([]byte(nil), src...)
			b[meta*pageSize+16+40] ^= 0x01 // the page count inside the checksummed meta
			wantBroken(t, b, fmt.Sprintf("meta page %d is damaged", meta))
		})
	}
	// Every page bbolt reaches (branch, leaf, free list): flip its type
	// byte. Free pages hold nothing, so damage there may go unnoticed, but
	// must not crash either.
	db, err := bolt.Open(golden, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	type page struct {
		id   int64
		kind string
	}
	var pages []page
	if err := db.View(func(tx *bolt.Tx) error {
		for id := 2; int64(id) < used; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return fmt.Errorf("page %d: %v", id, err)
			}
			pages = append(pages, page{int64(id), p.Type})
			id += p.OverflowCount
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	broken := 0
	for _, p := range pages {
		b := append([]byte(nil), src...)
		b[p.id*pageSize+8] ^= 0xff // page flags: branch, leaf, meta, freelist
		r := verify(t, b)
		switch {
		case p.kind != "free" && r.code != 1:
			t.Errorf("%s page %d flipped: exit %d, want 1\n%s%s", p.kind, p.id, r.code, r.stdout, r.stderr)
		case p.kind == "free" && r.code != 0 && r.code != 1:
			t.Errorf("free page %d flipped: exit %d\n%s", p.id, r.code, r.stderr)
		case r.code == 1:
			broken++
		}
	}
	if broken == 0 {
		t.Fatalf("no flipped page was reported among %v", pages)
	}

	if r := verify(t, []byte(strings.Repeat("not a database\n", 1000))); r.code != 2 {
		t.Fatalf("a file that is no database: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// dbPages returns the page size and the pages in use (the high-water mark)
// of a bbolt file.
func dbPages(t *testing.T, path string) (pageSize, used int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		pageSize = int64(db.Info().PageSize)
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				used = int64(id)
				return nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pageSize, used
}
