package main

import (
	"errors"
	"fmt"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
)

// Lint runs `helm lint --strict` on the chart in folder dir with vals over
// its values.yaml, for a release in namespace: Chart.yaml, values, and every
// template rendered and checked as Kubernetes objects. Every warning and
// error comes back as one line ("[WARNING] path: problem") in one error
// that wraps ErrLint; informational messages, such as a missing icon, do not
// count, as with helm lint. A chart that cannot be read is an error without
// ErrLint.
func Lint(dir, namespace string, vals map[string]any) error {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = namespace
	res := l.Run([]string{dir}, vals)
	if res.TotalChartsLinted == 0 {
		return fmt.Errorf("linting chart %q: %w", dir, errors.Join(res.Errors...))
	}
	var problems []error
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			problems = append(problems, m)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("chart %q: %w:\n%w", dir, ErrLint, errors.Join(problems...))
}
