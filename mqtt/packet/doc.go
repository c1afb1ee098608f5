// Package packet encodes and decodes MQTT 3.1, 3.1.1 and 5.0 control packets.
package packet
