// Package cli implements signctl, the operator's and developer's command
// line. It talks to the daemon only through the public client package; offline
// verification uses the same pure format packages the daemon uses.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/client"
)

// DefaultSocket is where signctl looks for signerd when neither --socket
// nor SIGNCTL_SOCKET says otherwise.
const DefaultSocket = "/run/signerd/signerd.sock"

// globals are the flags every command shares.
type globals struct {
	socket  string
	remote  remoteFlags // --addr and its TLS flags
	output  string
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer
}

// dial connects to the daemon.
func (g *globals) dial() (*client.Client, error) {
	c, err := g.remote.dial(g.socket)
	if err != nil {
		return nil, exitErr(ExitUsage, err)
	}
	return c, nil
}

// connect dials the daemon for one command and bounds the command by
// --timeout; done closes both.
func (g *globals) connect(cmd *cobra.Command) (context.Context, *client.Client, func(), error) {
	c, err := g.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := g.ctx(cmd.Context())
	return ctx, c, func() { cancel(); c.Close() }, nil
}

// ctx bounds one command by --timeout.
func (g *globals) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if g.timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, g.timeout)
}

func (g *globals) json() bool { return g.output == "json" }

// NewRootCommand builds signctl.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "signctl",
		Short: "Sign and verify packages and skills with signerd",
		Long: `signctl is the command line of signerd, the HSM-backed signing service.

It signs artifacts through the daemon (private keys never leave the HSM),
verifies them online (through the daemon's trust and policy) or offline (from a
public key on disk), and administers keys, trust and policy.

Exit codes: 0 success/verified, 1 verification failed, 2 bad usage or input,
3 daemon unreachable or internal error, 4 permission denied.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return exitErr(ExitUsage, fmt.Errorf("-o must be text or json, not %q", g.output))
			}
			if g.timeout < 0 {
				return exitErr(ExitUsage, fmt.Errorf("--timeout must not be negative (0: no limit), not %s", g.timeout))
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	socket := os.Getenv("SIGNCTL_SOCKET")
	if socket == "" {
		socket = DefaultSocket
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.socket, "socket", socket, "signerd's Unix socket (env SIGNCTL_SOCKET)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "give up on the daemon (and the network) after this long; 0: wait as long as it takes. Reading and hashing your files is not bounded by it")
	g.remote.register(pf)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitErr(ExitUsage, err) })

	skillCmd := newSkillCommand(g)
	addSkillDaemonCommands(skillCmd, g)
	root.AddCommand(
		skillCmd,
		newKeyCommand(g),
		newTrustCommand(g),
		newPolicyCommand(g),
		newSignCommand(g),
		newVerifyCommand(g),
		newAuditCommand(g),
		newLogCommand(g),
		newVersionCommand(g),
	)
	return root
}

// Main runs signctl with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	unknownSubcommand(root)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	err = usageFromCobra(root, err)
	if isReported(err) {
		return exitCode(err)
	}
	r := describe(err)
	printReport(stdout, stderr, r, wantsJSON(root, args))
	return r.Code
}
