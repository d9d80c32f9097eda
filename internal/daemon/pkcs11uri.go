package daemon

import (
	"fmt"

	"github.com/signerd/signerd/internal/keystore/pkcs11"
)

// applyPKCS11URI folds --pkcs11-uri into the module, token and PIN
// settings. What the URI says replaces the built-in defaults; a module,
// label or PIN file also set to a different value elsewhere (flag,
// environment, config file) is an error naming both, since either could be
// the one meant. SIGNERD_PIN beside a pin-source is an error too.
func (c *Config) applyPKCS11URI() error {
	if c.PKCS11URI == "" {
		return nil
	}
	u, err := pkcs11.ParseURI(c.PKCS11URI)
	if err != nil {
		return fmt.Errorf("--pkcs11-uri: %w", err)
	}
	def := Defaults()
	for _, f := range []struct {
		flag, attr string
		have, def  *string
		want       string
	}{
		{"pkcs11-module", "module-path", &c.PKCS11Module, &def.PKCS11Module, u.ModulePath},
		{"token-label", "token", &c.TokenLabel, &def.TokenLabel, u.Token},
		{"pin-file", "pin-source", &c.PINFile, &def.PINFile, u.PINFile},
	} {
		if f.want == "" {
			continue
		}
		if *f.have != *f.def && *f.have != f.want {
			return fmt.Errorf("--pkcs11-uri gives %s %q but --%s (or its environment variable or config key) is %q: give it in one place",
				f.attr, f.want, f.flag, *f.have)
		}
		*f.have = f.want
	}
	if u.PINFile != "" && c.pin != "" {
		return fmt.Errorf("--pkcs11-uri gives pin-source %q but SIGNERD_PIN is set too: give the PIN in one place", u.PINFile)
	}
	if u.Token == "" && c.TokenLabel == def.TokenLabel {
		// Chosen by serial: the default label must not narrow the choice.
		c.TokenLabel = ""
	}
	c.TokenSerial, c.TokenModel, c.TokenManufacturer = u.Serial, u.Model, u.Manufacturer
	return nil
}
