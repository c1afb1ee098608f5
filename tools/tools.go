//go:build tools

// Package tools pins dependencies in go.mod before the code that uses them
// lands, so that engineers working in parallel share one go.mod.
package tools

import (
	_ "github.com/Azure/go-amqp"
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/eclipse/paho.golang/paho"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "golang.org/x/crypto/bcrypt"
)
