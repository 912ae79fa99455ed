package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminTokenRule(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PODPIN_TEST_TOKEN", "env-token")
	t.Setenv("PODPIN_TEST_EMPTY", "")
	cfgFile := filepath.Join(dir, "podpin.yaml")
	for _, tt := range []struct {
		name      string
		admin     string // the admin: section of the file
		flags     []string
		wantToken string
		wantErr   string // "" for success
	}{
		{name: "loopback needs no token", admin: "{address: 127.0.0.1:9901}"},
		{name: "localhost needs no token", admin: "{address: localhost:9901}"},
		{name: "IPv6 loopback needs no token", admin: "{address: '[::1]:9901'}"},
		{name: "a configured token is used on loopback too", admin: "{address: 127.0.0.1:9901, tokenFile: " + tokenFile + "}", wantToken: "file-token"},
		{name: "every interface without a token is refused", admin: "{address: 0.0.0.0:9901}", wantErr: `admin.tokenFile: a token is required when admin.address "0.0.0.0:9901" is not a loopback address`},
		{name: "a pod IP without a token is refused", admin: "{address: 10.1.2.3:9901}", wantErr: `admin.tokenFile: a token is required`},
		{name: "a host name without a token is refused", admin: "{address: admin.example:9901}", wantErr: `admin.tokenFile: a token is required`},
		{name: "every interface with a token file is accepted", admin: "{address: 0.0.0.0:9901, tokenFile: " + tokenFile + "}", wantToken: "file-token"},
		{name: "every interface with a token variable is accepted", admin: "{address: 0.0.0.0:9901, tokenEnv: PODPIN_TEST_TOKEN}", wantToken: "env-token"},
		{name: "the flags open the listener with a token file", admin: "{address: 127.0.0.1:9901}", flags: []string{"--admin", "0.0.0.0:9901", "--admin-token-file", tokenFile}, wantToken: "file-token"},
		{name: "the flags cannot open the listener without a token", admin: "{address: 127.0.0.1:9901}", flags: []string{"--admin", "0.0.0.0:9901"}, wantErr: "admin.tokenFile: a token is required"},
		{name: "the flag replaces a token variable", admin: "{address: 0.0.0.0:9901, tokenEnv: PODPIN_TEST_EMPTY}", flags: []string{"--admin-token-file", tokenFile}, wantToken: "file-token"},
		{name: "both sources are refused", admin: "{address: 0.0.0.0:9901, tokenFile: " + tokenFile + ", tokenEnv: PODPIN_TEST_TOKEN}", wantErr: "admin.tokenEnv: set either admin.tokenFile or admin.tokenEnv, not both"},
		{name: "an empty token variable is refused", admin: "{address: 0.0.0.0:9901, tokenEnv: PODPIN_TEST_EMPTY}", wantErr: `admin.tokenEnv: environment variable "PODPIN_TEST_EMPTY" is unset or empty`},
		{name: "an empty token file is refused", admin: "{address: 127.0.0.1:9901, tokenFile: " + empty + "}", wantErr: "admin.tokenFile: " + `"` + empty + `" is empty`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "admin: " + tt.admin + "\nroutes:\n- name: default\n  backends: [{name: web-0, url: 'http://127.0.0.1:9001'}]\n"
			if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := parseServeFlags(append([]string{"--config", cfgFile}, tt.flags...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var token string
			cfg, err := f.load()
			if err == nil {
				token, err = cfg.Admin.Token()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want token %q", err, tt.wantToken)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			case token != tt.wantToken:
				t.Errorf("got token %q, want %q", token, tt.wantToken)
			}
		})
	}
}
