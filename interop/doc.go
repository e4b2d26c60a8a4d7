// Package interop holds troupe's interoperability tests: clients that no one
// on the project wrote (Python's pika for RabbitMQ, nats.js for NATS) publish
// CloudEvents in binary content mode that a troupe app consumes, and consume
// the events a troupe app publishes, checking every ce- attribute and the
// JSON data on the way.
//
// The package has no code of its own; its tests need a RabbitMQ broker, a
// NATS server with JetStream, python3-pika and Node.js with npm. Each test
// skips with an install hint when one is missing, and fails instead when
// the CI environment variable is set.
package interop
