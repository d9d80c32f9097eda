// Package deb_test builds the Debian package with `make deb`, as a user
// would, and checks what it holds and what it lays down in a scratch root.
package deb_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// need fails (never skips) when a tool `make deps` installs is missing.
func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is missing: run `make deps`", tool)
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// buildDeb runs `make deb` with its output in a temp dir. The pinned nfpm
// is installed in the repository's bin/tools (or SIGNERD_TOOLS) once.
func buildDeb(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tools := os.Getenv("SIGNERD_TOOLS")
	if tools == "" {
		tools = filepath.Join(root, "bin", "tools")
	}
	tmp := t.TempDir()
	run(t, root, "make", "--no-print-directory", "deb", "BIN="+filepath.Join(tmp, "bin"), "VAR="+filepath.Join(tmp, "var"), "TOOLS="+tools)
	debs, _ := filepath.Glob(filepath.Join(tmp, "bin", "signerd_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v, want one signerd_*.deb", debs)
	}
	return debs[0]
}

// installed is every path the package lays down, and what it must hold.
var installed = []string{
	"usr/bin/signerd",
	"usr/bin/signctl",
	"lib/systemd/system/signerd.service",
	"lib/systemd/system/signerd.socket",
	"usr/lib/sysusers.d/signerd.conf",
	"etc/signerd/signerd.conf",
	"etc/signerd/softhsm2.conf",
	"usr/share/man/man1/signerd.1.gz",
	"usr/share/man/man1/signctl.1.gz",
	"usr/share/man/man1/signctl-sign.1.gz",
	"usr/share/man/man1/signctl-verify.1.gz",
	"usr/share/man/man1/signerd-init-token.1.gz",
	"usr/share/bash-completion/completions/signerd",
	"usr/share/bash-completion/completions/signctl",
	"usr/share/zsh/vendor-completions/_signerd",
	"usr/share/zsh/vendor-completions/_signctl",
	"usr/share/fish/vendor_completions.d/signerd.fish",
	"usr/share/fish/vendor_completions.d/signctl.fish",
	"usr/share/doc/signerd/copyright",
	"usr/share/doc/signerd/changelog.Debian.gz",
}

// TestDebianPackage: `make deb` builds a package whose control data,
// contents and maintainer scripts are as the README says, that lintian
// finds no error in, and that installs a working signerd and signctl, a
// config file signerd reads, man pages, completions, units systemd-analyze
// accepts and a sysusers entry that creates the signerd user.
func TestDebianPackage(t *testing.T) {
	for _, tool := range []string{"make", "dpkg-deb", "lintian", "strip", "systemd-analyze", "systemd-sysusers"} {
		need(t, tool)
	}
	deb := buildDeb(t)
	t.Logf("built %s", filepath.Base(deb))

	info := run(t, "", "dpkg-deb", "--info", deb)
	for _, want := range []string{"Package: signerd", "Depends: libc6 (>= 2.34), adduser", "Section: admin", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	conffiles := run(t, "", "dpkg-deb", "--field", deb, "Package") // the package is readable
	if strings.TrimSpace(conffiles) != "signerd" {
		t.Fatalf("Package field %q", conffiles)
	}
	contents := run(t, "", "dpkg-deb", "--contents", deb)
	for _, p := range installed {
		if !strings.Contains(contents, " ./"+p+"\n") {
			t.Errorf("dpkg-deb --contents lacks ./%s", p)
		}
	}

	// Control files: the two configuration files are conffiles; the
	// scripts are valid sh.
	ctrl := t.TempDir()
	run(t, "", "dpkg-deb", "--control", deb, ctrl)
	cf, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(cf)); strings.Join(got, " ") != "/etc/signerd/signerd.conf /etc/signerd/softhsm2.conf" {
		t.Errorf("conffiles %q", got)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		run(t, "", "sh", "-n", filepath.Join(ctrl, s))
	}

	// lintian: no errors; warnings are listed (README, "Packages").
	lint := exec.Command("lintian", "--fail-on", "error", deb)
	out, err := lint.CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "E: ") {
			t.Logf("lintian: %s", l)
		}
	}
	if err != nil || regexp.MustCompile(`(?m)^E: `).Match(out) {
		t.Errorf("lintian reports errors (%v):\n%s", err, out)
	}

	// Lay it down in a scratch root and look at what is there.
	root := t.TempDir()
	run(t, "", "dpkg-deb", "--extract", deb, root)
	for _, p := range installed {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not laid down (or empty): %v", p, err)
		}
	}
	signerd, signctl := filepath.Join(root, "usr/bin/signerd"), filepath.Join(root, "usr/bin/signctl")
	conf := run(t, "", signerd, "config", "--config", filepath.Join(root, "etc/signerd/signerd.conf"))
	for _, want := range []string{"store = bbolt:/var/lib/signerd/signerd.db", "socket = /run/signerd/signerd.sock", "pin-file = /var/lib/signerd/pin", "token-label = signerd"} {
		if !strings.Contains(conf, want) {
			t.Errorf("signerd config with the packaged signerd.conf lacks %q:\n%s", want, conf)
		}
	}
	if h := run(t, "", signctl, "--help"); !strings.Contains(h, "verify") {
		t.Errorf("signctl --help:\n%s", h)
	}
	for _, page := range []string{"signerd.1.gz", "signctl-verify.1.gz"} {
		f, err := os.Open(filepath.Join(root, "usr/share/man/man1", page))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		b, err := io.ReadAll(zr)
		f.Close()
		if err != nil || !bytes.Contains(b, []byte(".TH ")) {
			t.Errorf("%s is not a man page (%v)", page, err)
		}
	}
	for p, want := range map[string]string{
		"usr/share/bash-completion/completions/signctl":    "__start_signctl",
		"usr/share/zsh/vendor-completions/_signctl":        "#compdef signctl",
		"usr/share/fish/vendor_completions.d/signctl.fish": "complete -c signctl",
	} {
		if b, _ := os.ReadFile(filepath.Join(root, p)); !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q", p, want)
		}
	}

	// The sysusers entry creates the signerd system user and group.
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", "systemd-sysusers", "--root="+root, filepath.Join(root, "usr/lib/sysusers.d/signerd.conf"))
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil || !regexp.MustCompile(`(?m)^signerd:x:[0-9]+:[0-9]+:signerd signing service:/var/lib/signerd:`).Match(passwd) {
		t.Errorf("systemd-sysusers made no signerd user (%v):\n%s", err, passwd)
	}
	if group, _ := os.ReadFile(filepath.Join(root, "etc/group")); !regexp.MustCompile(`(?m)^signerd:x:[0-9]+:`).Match(group) {
		t.Errorf("no signerd group:\n%s", group)
	}

	// The installed units, with the installed binary, pass systemd-analyze.
	copyTree(t, "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/system"))
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, kill, filepath.Join(root, "bin/kill"), 0o755)
	if out := run(t, "", "systemd-analyze", "verify", "--man=no", "--root="+root, "signerd.socket", "signerd.service"); out != "" {
		t.Errorf("systemd-analyze verify on the installed units:\n%s", out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the regular files of dir (not below) into to.
func copyTree(t *testing.T, dir, to string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(dir, e.Name()), filepath.Join(to, e.Name()), 0o644)
		}
	}
}
