package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"testing"

	"github.com/signerd/signerd/client"
	"github.com/signerd/signerd/internal/testutil/softhsm"
)

// env is the real signerd every test and example of this package talks to:
// built from ../cmd, on a fresh SoftHSM2 token and bbolt file, set up by
// the real signctl. Examples reach it with Dial(""): TestMain sets
// SIGNCTL_SOCKET.
var env struct {
	dir, socket, signctl string
}

// The setup TestMain makes: org acme trusts key release (and the revoked
// key old) and requires signatures; org dev trusts release and admits
// unsigned code. testdata/libhello.so is signed by release,
// libstranger.so by stranger (trusted by nobody), libold.so by old.
func setup(signctl func(args ...string) error) error {
	for _, args := range [][]string{
		{"key", "create", "release", "--algorithm", "ed25519"},
		{"key", "create", "stranger", "--algorithm", "ed25519"},
		{"key", "create", "old", "--algorithm", "ed25519"},
		{"trust", "add", "--org", "acme", "--key", "release"},
		{"trust", "add", "--org", "acme", "--key", "old"},
		{"policy", "set", "--org", "acme", "--require-signatures=true"},
		{"trust", "add", "--org", "dev", "--key", "release"},
		{"policy", "set", "--org", "dev", "--require-signatures=false"},
		{"sign", "testdata/libhello.so", "--key", "release", "--out", filepath.Join(env.dir, "libhello.so.sig")},
		{"sign", "testdata/libstranger.so", "--key", "stranger", "--out", filepath.Join(env.dir, "libstranger.so.sig")},
		{"sign", "testdata/libold.so", "--key", "old", "--out", filepath.Join(env.dir, "libold.so.sig")},
		{"key", "revoke", "old", "--reason", "key_compromise"},
	} {
		if err := signctl(args...); err != nil {
			return err
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "signerd-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env.dir, env.socket = dir, filepath.Join(dir, "signerd.sock")
	stop, err := startDaemon(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		return 1
	}
	defer stop()
	signctl := func(args ...string) error {
		cmd := exec.Command(env.signctl, args...)
		cmd.Env = append(os.Environ(), "SIGNCTL_SOCKET="+env.socket)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("signctl %q: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := setup(signctl); err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		return 1
	}
	os.Setenv(client.SocketEnv, env.socket)
	return m.Run()
}

// startDaemon builds signerd and signctl, makes a SoftHSM2 token in dir
// and runs signerd on it until stop.
func startDaemon(dir string) (stop func(), err error) {
	signerd := filepath.Join(dir, "signerd")
	env.signctl = filepath.Join(dir, "signctl")
	for bin, pkg := range map[string]string{signerd: "../cmd/signerd", env.signctl: "../cmd/signctl"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	module, err := softhsm.FindModule()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return nil, err
	}
	hsm := []string{"--pkcs11-module", module, "--token-label", "client-test", "--pin-file", filepath.Join(dir, "pin")}
	daemonEnv := append(os.Environ(), "SOFTHSM2_CONF="+conf)
	initToken := exec.Command(signerd, append([]string{"init-token", "--so-pin-file", filepath.Join(dir, "so-pin")}, hsm...)...)
	initToken.Env = daemonEnv
	if out, err := initToken.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("signerd init-token: %v\n%s", err, out)
	}
	logs, err := os.Create(filepath.Join(dir, "signerd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(signerd, append(hsm, "--db", filepath.Join(dir, "signerd.db"), "--socket", env.socket)...)
	cmd.Env = daemonEnv
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		logs.Close()
	}
	// Start-up is bounded by attempts, not measured.
	for range 500 {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logs.Name())
			return nil, fmt.Errorf("signerd exited during start-up: %v\n%s", err, b)
		default:
		}
		if healthy(env.socket) {
			return stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	b, _ := os.ReadFile(logs.Name())
	return nil, errors.New("signerd did not become healthy\n" + string(b))
}

func healthy(socket string) bool {
	c, err := client.Dial(socket)
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := c.Health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING
}
