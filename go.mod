module github.com/ferry-iot/ferry

go 1.26.8

require (
	github.com/Azure/go-amqp v1.7.0 // indirect
	github.com/eclipse/paho.golang v0.23.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)
