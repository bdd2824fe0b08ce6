[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace PrunerZero.Cli.Tests;

/// <summary>
/// Runs the prunerzero entry point in-process with stdout and stderr captured, and checks that the verb, however it
/// ended, left no live TorchSharp tensor behind (tests run one at a time here, so the count is the verb's own).
/// </summary>
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
        long live = TorchSharp.torch.Tensor.TotalCount;
        int exit;
        try { exit = Program.Main(args); }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
        long left = TorchSharp.torch.Tensor.TotalCount - live;
        Assert.True(left == 0, $"`prunerzero {string.Join(' ', args)}` (exit {exit}) left {left} live tensor(s) behind\n{e}");
        return (exit, o.ToString(), e.ToString());
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
