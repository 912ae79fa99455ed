package config

import (
	"fmt"
	"reflect"
	"slices"
)

// RestartOnly names the settings a running podpin cannot change: it reads
// them once, at start, to serve its admin API, connect to Redis, restore
// its state or key its digests. A reload (SIGHUP, a changed file, an Ingress
// change) applies everything else and reports each of these that differs
// as needing a restart. It is the one list; docs/configuration.md shows it.
var RestartOnly = func() []string {
	names := make([]string, len(restartOnly))
	for i, s := range restartOnly {
		names[i] = s.name
	}
	return names
}()

// restartOnly pairs each name of RestartOnly with the field it names.
var restartOnly = []struct {
	name  string
	field func(*Config) any // a pointer to the field
}{
	{"admin", func(c *Config) any { return &c.Admin }},
	{"log", func(c *Config) any { return &c.Log }},
	{"keySecret", func(c *Config) any { return &c.KeySecret }},
	{"shutdown", func(c *Config) any { return &c.Shutdown }},
	{"state", func(c *Config) any { return &c.State }},
	{"store.type", func(c *Config) any { return &c.Store.Type }},
	{"store.redis", func(c *Config) any { return &c.Store.Redis }},
	{"limits.headerTimeout", func(c *Config) any { return &c.Limits.HeaderTimeout }},
	{"limits.idleTimeout", func(c *Config) any { return &c.Limits.IdleTimeout }},
	{"limits.maxHeaderBytes", func(c *Config) any { return &c.Limits.MaxHeaderBytes }},
	{"limits.maxConnections", func(c *Config) any { return &c.Limits.MaxConnections }},
	{"limits.maxConnsPerIP", func(c *Config) any { return &c.Limits.MaxConnsPerIP }},
	{"limits.maxConcurrentStreams", func(c *Config) any { return &c.Limits.MaxConcurrentStreams }},
}

// Live returns the part of next that a process started with started can
// apply: a copy of next in which every restart-only setting holds
// started's value, and a route that asks for the Redis store when the
// process has no Redis connection keeps a memory table. pending names
// each setting whose change waits for a restart, in RestartOnly's order,
// then routes by name ("routes[web].store"). Neither argument is
// modified.
func Live(started, next *Config) (live *Config, pending []string) {
	c := *next
	for _, s := range restartOnly {
		have, want := reflect.ValueOf(s.field(started)).Elem(), reflect.ValueOf(s.field(&c)).Elem()
		if !reflect.DeepEqual(have.Interface(), want.Interface()) {
			pending = append(pending, s.name)
			want.Set(have)
		}
	}
	if !started.UsesRedis() {
		c.Routes = slices.Clone(next.Routes)
		for i := range c.Routes {
			if r := &c.Routes[i]; r.Store == StoreRedis {
				pending = append(pending, fmt.Sprintf("routes[%s].store", r.Name))
				r.Store = StoreMemory
			}
		}
	}
	return &c, pending
}
