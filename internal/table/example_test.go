package table_test

import (
	"fmt"
	"time"

	"github.com/podpin/podpin/internal/table"
)

func Example() {
	d := table.NewDigester([]byte("shared secret"))
	t := table.New(table.Config{MaxEntries: 10_000, IdleTimeout: time.Hour})

	k := d.Key("shop", []byte("session-8f2c"))
	if _, ok := t.Lookup(k); !ok {
		t.Store(k, "shop-0", nil) // the first request picks a pod
	}
	pod, ok := t.Lookup(k) // later requests go to the same pod
	fmt.Println(pod, ok)

	prev, rebound := t.Store(k, "shop-1", nil) // shop-0 went away
	fmt.Println(prev, rebound, t.Sessions("shop-0"), t.Sessions("shop-1"))

	st := t.Stats()
	fmt.Println(st.Hits, st.Misses, st.Inserts, st.Rebinds)
	// Output:
	// shop-0 true
	// shop-0 true 0 1
	// 1 1 1 1
}
