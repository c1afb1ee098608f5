package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// newAppCmd is `ferry app`: helpers for the application users of the
// northbound AMQP API, which live in the configuration (applications:).
func newAppCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Application users of the northbound AMQP API (configured under applications:)",
	}
	var cost int
	hash := &cobra.Command{
		Use:   "hash-password [password]",
		Short: "Print the bcrypt hash of a password, for applications[].password_hash",
		Long: "Print the bcrypt hash of a password for the password_hash of an application user:\n\n" +
			"  applications:\n" +
			"    - name: dashboard\n" +
			"      password_hash: <the hash>\n" +
			"      tenants: [acme]\n\n" +
			"Without an argument, or with -, the password is read from the first line of stdin.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw string
			if len(args) == 1 && args[0] != "-" {
				pw = args[0]
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no password on stdin")
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if pw == "" {
				return errors.New("the password must not be empty")
			}
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return fmt.Errorf("--cost %d: from %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return err
		},
	}
	hash.Flags().IntVar(&cost, "cost", bcrypt.DefaultCost, "bcrypt cost")
	cmd.AddCommand(hash)
	return cmd
}
