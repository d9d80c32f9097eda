package cli

import (
	"github.com/spf13/cobra"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/version"
)

// versionOutput is the -o json shape of signctl version. Server is null
// when the daemon could not be asked; ServerError then says why.
type versionOutput struct {
	Client      version.Info  `json:"client"`
	Server      *version.Info `json:"server"`
	ServerError string        `json:"server_error,omitempty"`
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print signctl's version and, when reachable, signerd's",
		Long: `Print the module version, VCS revision and build time of signctl and, when
the daemon answers (GetServerInfo), of signerd. An unreachable daemon is
reported, not an error: the command still exits 0 with the client's version.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := versionOutput{Client: version.Get()}
			if info, err := serverVersion(cmd, g); err != nil {
				out.ServerError = describe(err).Message
			} else {
				out.Server = info
			}
			if g.json() {
				return printJSON(g.stdout, out)
			}
			printf(g.stdout, "client: signctl %s\n", out.Client)
			if out.Server != nil {
				printf(g.stdout, "server: signerd %s\n", *out.Server)
			} else {
				printf(g.stdout, "server: %s\n", out.ServerError)
			}
			return nil
		},
	}
}

// serverVersion asks the daemon which build it is.
func serverVersion(cmd *cobra.Command, g *globals) (*version.Info, error) {
	ctx, c, done, err := g.connect(cmd)
	if err != nil {
		return nil, err
	}
	defer done()
	resp, err := c.Signer.GetServerInfo(ctx, &signerv1.GetServerInfoRequest{})
	if err != nil {
		return nil, c.FromStatus(err)
	}
	return &version.Info{
		Module: resp.GetModule(), Version: resp.GetVersion(), Revision: resp.GetRevision(), Modified: resp.GetModified(),
		BuildTime: resp.GetBuildTime(), GoVersion: resp.GetGoVersion(),
	}, nil
}
