package config

import (
	"errors"
	"fmt"
	"time"
)

// Overrides are settings given beside a configuration, as the flags of
// 'podpin serve' give them, to apply over the file's. A nil field leaves
// the file's setting.
type Overrides struct {
	// Listen is the address of the configuration's one listener (made when
	// it has none).
	Listen *string
	// TLS, when set, makes that listener a TLS one serving this
	// certificate; it needs Listen.
	TLS *Certificate
	// Admin is the admin listener's address; AdminTokenFile the file of
	// its token, in place of any token environment variable.
	Admin, AdminTokenFile *string
	// LogFormat is log.format.
	LogFormat *string
	// StateFile is state.file.
	StateFile *string
	// Redis is the URL of the store every route then keeps its table in.
	Redis *string
	// DrainTimeout and Delay are shutdown.drainTimeout and shutdown.delay.
	DrainTimeout, ShutdownDelay *time.Duration
}

// Apply sets o's settings in c, which came from file ("" for none). The
// listener's other settings (trusted proxies, PROXY protocol, TLS version)
// stay as c has them. A configuration with several listeners cannot take
// Listen, since it does not say which one it means.
func (o Overrides) Apply(c *Config, file string) error {
	if o.TLS != nil && o.Listen == nil {
		return errors.New("--tls-cert applies to the --listen listener: give --listen too, or set listeners[].tls in the file")
	}
	if o.Listen != nil {
		switch len(c.Listeners) {
		case 0:
			c.Listeners = []Listener{{}}
		case 1:
		default:
			return fmt.Errorf("--listen cannot choose among the %d listeners of %s: set their addresses in the file", len(c.Listeners), file)
		}
		l := &c.Listeners[0]
		l.Address = *o.Listen
		if o.TLS != nil {
			if l.TLS == nil {
				l.TLS = &ListenerTLS{}
			}
			l.TLS.Certificates = []Certificate{*o.TLS}
		}
	}
	if o.Admin != nil {
		c.Admin.Address = *o.Admin
	}
	if o.AdminTokenFile != nil {
		c.Admin.TokenFile, c.Admin.TokenEnv = *o.AdminTokenFile, ""
	}
	if o.LogFormat != nil {
		c.Log.Format = *o.LogFormat
	}
	if o.StateFile != nil {
		c.State.File = *o.StateFile
	}
	if o.Redis != nil {
		c.Store.Type, c.Store.Redis.URL, c.Store.Redis.Addrs = StoreRedis, *o.Redis, nil
		for i := range c.Routes {
			c.Routes[i].Store = ""
		}
	}
	if o.DrainTimeout != nil {
		c.Shutdown.DrainTimeout = *o.DrainTimeout
	}
	if o.ShutdownDelay != nil {
		c.Shutdown.Delay = *o.ShutdownDelay
	}
	return nil
}
