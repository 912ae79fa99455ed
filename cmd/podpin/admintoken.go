package main

import (
	"fmt"

	"github.com/podpin/podpin/internal/config"
)

// readAdminToken returns the admin API's bearer token, "" when none is
// configured. It refuses to go on without one when the admin listener is
// not loopback: the API can move and drop every session.
func readAdminToken(a config.Admin) (string, error) {
	token, err := a.Token()
	if err != nil {
		return "", err
	}
	if token == "" && !a.IsLoopback() {
		return "", fmt.Errorf("admin.tokenFile: a token is required when admin.address %q is not a loopback address (set admin.tokenFile, admin.tokenEnv or --admin-token-file)", a.Address)
	}
	return token, nil
}
