using CommandLine;
using PrunerZero.Workflows;

namespace PrunerZero.Cli;

[Verb("worker", HelpText = "Serve search evaluations as a member (Orleans silo) of a cluster; one worker per device.")]
public sealed class WorkerOptions : PruningSetupOptions
{
    [Option("cluster", Required = true, HelpText = "localhost[:PORT] (one machine; start the first worker first) or redis://HOST:PORT[/NAME].")]
    public string Cluster { get; set; } = "";

    [Option("screen-windows", Default = Defaults.ScreenWindows, HelpText = "Windows of the fast fitness; must match the search's.")]
    public int ScreenWindows { get; set; }

    [Option("stages", Separator = ',', HelpText = "The search's --stages; must match the search's.")]
    public IEnumerable<int> Stages { get; set; } = [];

    [Option("name", HelpText = "Name in progress lines and reports (default: HOST:SILO-PORT).")]
    public string? Name { get; set; }

    [Option("advertise", HelpText = "With redis: the IP address other machines reach this worker at (default: the first non-loopback IPv4 address).")]
    public string? Advertise { get; set; }
}

public static class WorkerCommand
{
    /// <summary>Everything a worker serves with, from its options (every option of the verb reaches it).</summary>
    public static WorkerPlan Plan(WorkerOptions o)
    {
        WorkerWorkflow.CheckEndpoint(o.Cluster, o.Advertise);
        var target = o.Target();
        o.Sampling();
        CliPaths.Cache(CliPaths.Pruning(o), o);
        WorkerWorkflow.CheckScreenWindows(o.ScreenWindows);
        Workflows.SearchWorkflow.CheckStages([.. o.Stages], o.ScreenWindows);
        o.Preflight(target);   // counts, seqlen and the model's config, before hashing and joining
        return WorkerWorkflow.Plan(new WorkerSettings
        {
            Cluster = o.Cluster, Name = o.Name, Advertise = o.Advertise, Session = o.Session(), Target = target, ScreenWindows = o.ScreenWindows, Stages = [.. o.Stages],
        });
    }

    public static int Run(WorkerOptions o)
    {
        var plan = Plan(o);
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        // A plain `kill` (SIGTERM) leaves the cluster as Ctrl-C does; without this the silo keeps the process alive.
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });
        WorkerWorkflow.Run(plan, log, progress, progress.Done, cts.Token);
        return 0;
    }
}
