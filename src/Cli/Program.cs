using CommandLine;
using Microsoft.Data.Sqlite;
using PrunerZero.Runtime;

namespace PrunerZero.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var parser = new Parser(s => { s.HelpWriter = Console.Error; s.CaseInsensitiveEnumValues = true; });
        try
        {
            return parser.ParseArguments<EvalOptions, PruneOptions, ScoreOptions, SearchOptionsCli, BenchOptions, ZeroShotOptions, TrainOptionsCli, WorkerOptions, SynthOptions, StatsOptions, AllocateOptions, FinetuneOptionsCli>(args).MapResult(
                (EvalOptions o) => EvalCommand.Run(o),
                (ZeroShotOptions o) => ZeroShotCommand.Run(o),
                (SearchOptionsCli o) => SearchCommand.Run(o),
                (BenchOptions o) => BenchCommand.Run(o),
                (PruneOptions o) => PruneCommand.Run(o),
                (ScoreOptions o) => ScoreCommand.Run(o),
                (TrainOptionsCli o) => TrainCommand.Run(o, args),
                (WorkerOptions o) => WorkerCommand.Run(o),
                (SynthOptions o) => SynthCommand.Run(o),
                (StatsOptions o) => StatsCommand.Run(o),
                (AllocateOptions o) => AllocateCommand.Run(o),
                (FinetuneOptionsCli o) => FinetuneCommand.Run(o),
                _ => 2);
        }
        catch (UserError e)
        {
            // The engine names parameters; the user typed flags.
            Console.Error.WriteLine($"error: {e.Render(Flag)}");
            return 1;
        }
        catch (Exception e) when (DiskSpace.IsFull(e) || e is SqliteException { SqliteErrorCode: 13 })
        {
            // SQLITE_FULL (13) is the run store meeting a full disk. A search resumes from its store once there is room.
            Console.Error.WriteLine($"error: the disk is full: {e.Message}; free some space (or choose another --out, --run or --cache) and run again");
            return 1;
        }
        catch (Exception e)
        {
            // Not the user's fault: say what broke in one line; the stack trace only on request.
            Console.Error.WriteLine($"error: internal failure: {e.GetType().Name}: {e.Message} (set PZ_DEBUG=1 for the stack trace)");
            if (Environment.GetEnvironmentVariable("PZ_DEBUG") == "1") Console.Error.WriteLine(e);
            return 3;
        }
    }

    /// <summary>The command-line flag of an engine parameter (snake_case): nsamples → --nsamples, screen_windows → --screen-windows.</summary>
    public static string Flag(string parameter) => "--" + parameter.Replace('_', '-');
}
