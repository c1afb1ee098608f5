// Package openapi embeds Ferry's committed OpenAPI documents, so that the
// servers serve exactly the files under docs/openapi (go:embed cannot reach
// files outside a package's directory).
package openapi

import _ "embed"

// RegistryV1 is the OpenAPI 3 document of the device registry management
// API (registry-v1.yaml).
//
//go:embed registry-v1.yaml
var RegistryV1 []byte

// ConsoleV1 is the OpenAPI 3 document of the web console's API
// (console-v1.yaml).
//
//go:embed console-v1.yaml
var ConsoleV1 []byte
