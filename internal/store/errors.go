package store

import "errors"

// ErrClusterList means listing by pages is not available on Redis Cluster.
var ErrClusterList = errors.New("listing sessions page by page is not available on Redis Cluster")
