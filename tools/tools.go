//go:build tools

// Package tools pins test-only and tool dependencies in go.mod.
package tools

import (
	_ "github.com/Azure/go-amqp"
	_ "github.com/eclipse/paho.golang/paho"
)
