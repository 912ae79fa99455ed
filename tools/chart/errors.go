package main

import "errors"

// ErrLint is wrapped by the error Lint returns for a chart helm lint
// finds problems in.
var ErrLint = errors.New("helm lint found problems")
