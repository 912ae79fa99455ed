// Module tools/schedtrace reads a Go execution trace of podpin under load and
// tells where requests wait. It is separate from the product module, which
// does not need a trace parser.
module github.com/podpin/podpin/tools/schedtrace

go 1.26.8

require golang.org/x/exp v0.0.0-20261009195045-ca0d7ba23607
