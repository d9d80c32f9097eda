// Command gendocs writes signerd's and signctl's man pages and shell
// completions from their cobra command trees, so they cannot drift from the
// binaries. `make deb` runs it; its output is not committed.
//
//	go run ./deploy/gendocs -out DIR
//
// writes DIR/man/*.1 (one page per command, as git does) and
// DIR/completions/{bash,zsh,fish}/.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/signerd/signerd/internal/cli"
	"github.com/signerd/signerd/internal/daemon"
)

func main() {
	out := flag.String("out", "", "directory to write man/ and completions/ into")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs -out DIR")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

func run(out string) error {
	roots := []*cobra.Command{
		daemon.NewRootCommand(io.Discard, io.Discard, os.Getenv),
		cli.NewRootCommand(io.Discard, io.Discard),
	}
	man := filepath.Join(out, "man")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	for _, root := range roots {
		root.DisableAutoGenTag = true // reproducible: no generation date
		name := root.Name()
		header := &doc.GenManHeader{Title: name, Section: "1", Source: "signerd", Manual: "signerd manual"}
		if err := doc.GenManTree(root, header, man); err != nil {
			return fmt.Errorf("man pages of %s: %w", name, err)
		}
		for shell, path := range map[string]string{
			"bash": filepath.Join(out, "completions", "bash", name),
			"zsh":  filepath.Join(out, "completions", "zsh", "_"+name),
			"fish": filepath.Join(out, "completions", "fish", name+".fish"),
		} {
			if err := writeCompletion(root, shell, path); err != nil {
				return fmt.Errorf("%s completion of %s: %w", shell, name, err)
			}
		}
	}
	return nil
}

func writeCompletion(root *cobra.Command, shell, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	switch shell {
	case "bash":
		err = root.GenBashCompletionV2(f, true)
	case "zsh":
		err = root.GenZshCompletion(f)
	case "fish":
		err = root.GenFishCompletion(f, true)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
