// Package contract writes down what a troupe program promises and expects
// of its events: the topics it publishes with their schemas, and what each
// subscription's handler reads.
package contract
