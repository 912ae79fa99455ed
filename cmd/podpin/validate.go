package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/podpin/podpin/internal/config"
)

// validateCmd checks a configuration file and prints every error with its
// field path. It exits non-zero when the file is invalid. With
// --ingress-class or --gateway, the file is checked as a controller's,
// which may have no routes.
func validateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("podpin validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration `file` to check")
	class := fs.String("ingress-class", "", "check the file as the configuration of an Ingress controller for this IngressClass `name`, whose routes may all come from Ingresses")
	gateway := fs.Bool("gateway", false, "check the file as the configuration of a Gateway API controller, whose routes may all come from HTTPRoutes and GRPCRoutes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("--config FILE is required")
	}
	c, err := config.Rules{RoutesOptional: *class != "" || *gateway}.Load(*file)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "%s: %d error(s)\n%s\n", *file, len(errs), errs)
			return fmt.Errorf("%s is not valid", *file)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: valid, %d route(s)\n", *file, len(c.Routes))
	return nil
}
