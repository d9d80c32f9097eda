package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
)

// newInitTokenCommand initialises a token for development (SoftHSM2): the
// PINs are generated, written to 0600 files and handed to PKCS#11 directly,
// so they never appear in any process's argv.
func newInitTokenCommand(stdout io.Writer, getenv func(string) string) *cobra.Command {
	var opts struct{ soPINFile string }
	cmd := &cobra.Command{
		Use:   "init-token --pkcs11-module LIB --token-label LABEL --pin-file FILE --so-pin-file FILE",
		Short: "Initialise a token (development: SoftHSM2) with random PINs written to 0600 files",
		Long: `Initialise a new token on the first free slot of the PKCS#11 module, with a
random user PIN and SO PIN written to the given files (mode 0600; existing
files are used as they are). Does nothing if a token with the label exists,
and then makes no PIN file: a missing user PIN file is an error.
make run uses this to create its SoftHSM2 token under ./var/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := Load(cmd.Flags(), getenv)
			if err != nil {
				return err
			}
			if cfg.PINFile == "" || opts.soPINFile == "" {
				return fmt.Errorf("init-token needs --pin-file and --so-pin-file")
			}
			if err := hardenProcess(); err != nil {
				return err
			}
			pin, pinMade, err := ensurePINFile(cfg.PINFile)
			if err != nil {
				return err
			}
			soPIN, soMade, err := ensurePINFile(opts.soPINFile)
			if err != nil {
				if pinMade {
					_ = os.Remove(cfg.PINFile)
				}
				return err
			}
			err = pkcs11.InitToken(cfg.PKCS11Module, cfg.TokenLabel, soPIN, pin)
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				// The token's PINs were set when it was made: a PIN file
				// this run generated holds a random PIN the token never
				// had. Left behind, signerd would offer it (each refusal
				// counts towards locking the token) and an operator would
				// keep a wrong SO PIN. An SO PIN file that is gone is
				// normal (it is kept off the machine); a user PIN file
				// that is gone is not.
				if soMade {
					_ = os.Remove(opts.soPINFile)
				}
				if pinMade {
					_ = os.Remove(cfg.PINFile)
					return fmt.Errorf("token %q already exists and %s did not: its user PIN is not in a file this command can make; give --pin-file the file that holds it",
						cfg.TokenLabel, cfg.PINFile)
				}
				fmt.Fprintf(stdout, "token %q already exists\n", cfg.TokenLabel)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "initialised token %q; user PIN in %s\n", cfg.TokenLabel, cfg.PINFile)
			return nil
		},
	}
	registerFlags(cmd.Flags())
	cmd.Flags().StringVar(&opts.soPINFile, "so-pin-file", "", "file for the security officer PIN")
	return cmd
}

// ensurePINFile returns the PIN in path, creating the file with a random
// PIN (mode 0600, exclusive create) if it does not exist; made says it did.
func ensurePINFile(path string) (pin string, made bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimRight(string(b), "\r\n"), false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	pin = hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, err
	}
	if _, err := f.WriteString(pin + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", false, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", false, err
	}
	return pin, true, nil
}
