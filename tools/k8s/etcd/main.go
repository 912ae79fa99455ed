// Command etcd is the etcd server that podpin's Kubernetes tests store their
// API objects in. It lives in its own module so its version is pinned
// independently of the etcd client that k8s.io/kubernetes requires.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
