// Command kfake serves franz-go's in-memory Kafka (kfake) on loopback, for
// the benchmark scripts: Ferry's Kafka modes measured without a Kafka
// installation. It runs until interrupted.
//
//	go run ./bench/kfake -port 19092
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 19092, "port of the one broker, on 127.0.0.1")
	partitions := flag.Int("partitions", 1, "default partitions of created topics")
	flag.Parse()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(*port), kfake.DefaultNumPartitions(*partitions))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
