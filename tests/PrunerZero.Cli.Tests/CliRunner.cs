[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace PrunerZero.Cli.Tests;

/// <summary>Runs the prunerzero entry point in-process with stdout and stderr captured.</summary>
public static class CliRunner
{
    public static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        var o = new StringWriter();
        var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    /// <summary>A user's mistake: exit 1 and exactly one "error:" line containing <paramref name="expected"/>, no stack trace, no internal failure.</summary>
    public static string UserError(string expected, params string[] args)
    {
        var (exit, _, err) = Run(args);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error:")).ToList();
        Assert.True(exit == 1, $"exit {exit}: {err}");
        Assert.Single(lines);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("internal failure", err);
        Assert.DoesNotContain("   at ", err);
        return err;
    }
}
