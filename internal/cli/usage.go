package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// maxNamePadding is the widest column of command names a usage lists.
// Cobra pads every name to the longest (emop's longest is 53 characters),
// which pushes each description off an 80-column terminal; a name longer
// than this has its description on the next line instead.
const maxNamePadding = 26

// commandLine is a subcommand's line in its parent's usage: its name
// padded to the names' column and its summary.
func commandLine(c *cobra.Command) string {
	pad := min(c.NamePadding(), maxNamePadding)
	if n := len(c.Name()); n > pad {
		return c.Name() + "\n  " + strings.Repeat(" ", pad) + " " + c.Short
	}
	return c.Name() + strings.Repeat(" ", pad-len(c.Name())) + " " + c.Short
}

// usageTemplate is cobra's own (v1.10), with commandLine for the lines of
// subcommands.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Available Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{flowsCommandLine .}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{flowsCommandLine .}}{{end}}{{end}}{{end}}{{if not .AllChildCommandsHaveGroup}}

Additional Commands:{{range $cmds}}{{if (and (eq .GroupID "") (or .IsAvailableCommand (eq .Name "help")))}}
  {{flowsCommandLine .}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasHelpSubCommands}}

Additional help topics:{{range .Commands}}{{if .IsAdditionalHelpTopicCommand}}
  {{rpad .CommandPath .CommandPathPadding}} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

func init() { cobra.AddTemplateFunc("flowsCommandLine", commandLine) }
