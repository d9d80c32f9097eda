package softhsmtest

import (
	"os"
	"strings"
	"testing"
)

// TestREADMELoaders: the README shows the loaders and grpcurl commands the
// tests run, byte for byte, so what a reader copies is what was tested.
func TestREADMELoaders(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, fence string }{
		{"../examples/go-loader/main.go", "```go\n"},
		{"../examples/python-loader/loader.py", "```python\n"},
	} {
		src, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), f.fence+string(src)+"```\n") {
			t.Errorf("README.md does not show %s as it is: copy the file into its code block", f.path)
		}
	}
	for _, c := range []string{grpcurlCommands.list, grpcurlCommands.health, grpcurlCommands.verify} {
		if !strings.Contains(string(readme), c+"\n") {
			t.Errorf("README.md does not show the tested command:\n%s", c)
		}
	}
}
