// Package drivers registers the broker URL schemes of every transport
// bundled with troupe: embedded:, nats:// and tls:// (package natsjs), and
// amqp:// and amqps:// (package rabbitmq). The troupe package imports it,
// so that an app opens any of them by URL; a transport of its own
// registers its scheme with transport.RegisterScheme, and a program
// imports its package for that. Adding a bundled transport adds one import
// here, and touches nothing in the troupe package.
package drivers

import (
	_ "github.com/troupe-go/troupe/transport/natsjs"   // embedded:, nats://, tls://
	_ "github.com/troupe-go/troupe/transport/rabbitmq" // amqp://, amqps://
)
