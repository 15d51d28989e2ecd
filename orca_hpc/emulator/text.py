"""Text blocks of the emulated ORCA output, laid out like real ORCA 6.0 outputs.

Spacing follows the real outputs in ../shared/fixtures/orca/ closely enough that text-based
classifiers written against real ORCA also work on the emulator's output.
"""

from __future__ import annotations

from collections.abc import Sequence

from orca_hpc.emulator.inputs import Atom

VERSION = "6.0.1"
BOHR = 0.52917721092

HEADER = rf"""
                                 *****************
                                 * O   R   C   A *
                                 *****************

             ,#######,   #######,   ,#######,      ##
            ,#'     '#,  ##    ##  ,#'     '#,    #''#        ,####,   ,####,
            ##       ##  ##   ,#'  ##            #'  '#       #'       #'  '#
            ##       ##  #######   ##           ,######,      #####,   #    #
            '#,     ,#'  ##    ##  '#,     ,#' ,#      #,     #,   #   #,  ,#
             '#######'   ##     ##  '#######'  #'      '#     '####' # '####'


                #########################################################
                #                        -***-                          #
                #          Department of theory and spectroscopy        #
                #                                                       #
                #                      Frank Neese                      #
                #                                                       #
                #        Max Planck Institute fuer Kohlenforschung      #
                #                Kaiser Wilhelm Platz 1                 #
                #                 D-45470 Muelheim/Ruhr                 #
                #                      Germany                          #
                #                                                       #
                #                  All rights reserved                  #
                #                        -***-                          #
                #########################################################


                         Program Version {VERSION}  -  RELEASE   -

 (orca-hpc emulator: this is not ORCA; it imitates ORCA's output for testing)

 Your calculation uses the libint2 library for the computation of 2-el integrals
 For citations please refer to: http://libint.valeyev.net

 This ORCA versions uses:
   CBLAS   interface :  Fast vector & matrix operations
   LAPACKE interface :  Fast linear algebra routines
   SCALAPACK package :  Parallel linear algebra routines
   Shared memory     :  Shared parallel matrices

"""

# The banners of older major versions, copied from the real outputs' headers in tests/fixtures/orca/
# (ORCA 4: cclib__basicORCA4.2__dvb_sp.out; ORCA 5, 5.0.4:
# truth/ReactionMechanismGenerator-ARC__orca_neg_freq_ts.out), trailing blanks dropped. The 6.x
# banner above is the real one with the larger art left out.
_BANNER_4 = """
                                 *****************
                                 * O   R   C   A *
                                 *****************

           --- An Ab Initio, DFT and Semiempirical electronic structure package ---

                  #######################################################
                  #                        -***-                        #
                  #          Department of theory and spectroscopy      #
                  #               Directorship: Frank Neese             #
                  #        Max Planck Institute fuer Kohlenforschung    #
                  #                Kaiser Wilhelm Platz 1               #
                  #                 D-45470 Muelheim/Ruhr               #
                  #                      Germany                        #
                  #                                                     #
                  #                  All rights reserved                #
                  #                        -***-                        #
                  #######################################################


"""

_BANNER_5 = """
                                 *****************
                                 * O   R   C   A *
                                 *****************

                                            #,
                                            ###
                                            ####
                                            #####
                                            ######
                                           ########,
                                     ,,################,,,,,
                               ,,#################################,,
                          ,,##########################################,,
                       ,#########################################, ''#####,
                    ,#############################################,,   '####,
                  ,##################################################,,,,####,
                ,###########''''           ''''###############################
              ,#####''   ,,,,##########,,,,          '''####'''          '####
            ,##' ,,,,###########################,,,                        '##
           ' ,,###''''                  '''############,,,
         ,,##''                                '''############,,,,        ,,,,,,###''
      ,#''                                            '''#######################'''
     '                                                          ''''####''''
             ,#######,   #######,   ,#######,      ##
            ,#'     '#,  ##    ##  ,#'     '#,    #''#        ######   ,####,
            ##       ##  ##   ,#'  ##            #'  '#       #        #'  '#
            ##       ##  #######   ##           ,######,      #####,   #    #
            '#,     ,#'  ##    ##  '#,     ,#' ,#      #,         ##   #,  ,#
             '#######'   ##     ##  '#######'  #'      '#     #####' # '####'



                  #######################################################
                  #                        -***-                        #
                  #          Department of theory and spectroscopy      #
                  #    Directorship and core code : Frank Neese         #
                  #        Max Planck Institute fuer Kohlenforschung    #
                  #                Kaiser Wilhelm Platz 1               #
                  #                 D-45470 Muelheim/Ruhr               #
                  #                      Germany                        #
                  #                                                     #
                  #                  All rights reserved                #
                  #                        -***-                        #
                  #######################################################


"""

# ORCA 4 and 5 print the version line with this spacing (6 with more blanks, as in HEADER).
_VERSION_LINE_4_5 = "                         Program Version {v} -  RELEASE  -\n"
VERSIONS = ("4.2.1", "5.0.4", "6.0.1")  # the `version=` values the emulator accepts


def header(version: str = VERSION) -> str:
    """The output's header for an ORCA ``version`` (one of ``VERSIONS``)."""
    if version == VERSION:
        return HEADER
    major = version.split(".")[0]
    banner = _BANNER_4 if major == "4" else _BANNER_5
    rest = HEADER.split("RELEASE   -\n", 1)[1]  # the emulator's note and what follows the banner
    return banner + _VERSION_LINE_4_5.format(v=version) + rest


def rule(char: str = "-", width: int = 78) -> str:
    return char * width


def titled(title: str) -> str:
    line = "-" * len(title)
    return f"{line}\n{title}\n{line}\n"


def maxcore_note(maxcore: int) -> str:
    return (
        f"NOTE: MaxCore={maxcore} MB was set to SCF,MP2,MDCI,CIPSI,MRCI and CIS\n"
        "      => If you want to overwrite this, your respective input block should be placed "
        "after the MaxCore statement\n"
    )


def input_echo(name: str, lines: Sequence[str]) -> str:
    out = ["=" * 80, " " * 39 + "INPUT FILE", "=" * 80, f"NAME = {name}"]
    out += [f"|{i:3d}> {line}" for i, line in enumerate(lines, start=1)]
    out.append(f"|{len(lines) + 1:3d}> ")
    out.append(" " * 25 + "****END OF INPUT****")
    out.append("=" * 80)
    return "\n".join(out) + "\n"


def input_error_box(lines: Sequence[str]) -> str:
    bang = " " * 12 + "!" * 56
    body = [" " * 33 + "INPUT ERROR", *(" " * 12 + line for line in lines)]
    return (
        "\n\n\n"
        + "\n".join([bang, *body, bang])
        + "\n[file orca_main/maininp4.cpp, line 8728]: \n  .... aborting the run\n"
    )


def job_number_banner(number: int) -> str:
    return f"\n\n                         $$$$$$$$$$$$$$$$  JOB NUMBER {number:2d} $$$$$$$$$$$$$$\n\n"


def parallel_box(nprocs: int) -> str:
    return (
        "\n           ************************************************************\n"
        f"           *        Program running with {nprocs} parallel MPI-processes     *\n"
        "           *              working on a common directory               *\n"
        "           ************************************************************\n"
    )


def startup(nprocs: int, maxcore: int, natoms: int, charge: int, mult: int, nbasis: int) -> str:
    return (
        "------------------------------------------------------------------------------\n"
        "                             ORCA STARTUP CALCULATIONS\n"
        "------------------------------------------------------------------------------\n\n"
        f"Number of atoms                             ...   {natoms:5d}\n"
        f"Number of basis functions                   ...   {nbasis:5d}\n"
        f"Total Charge           Charge               ....  {charge:4d}\n"
        f"Multiplicity           Mult                 ....  {mult:4d}\n"
        f"Number of processes                         ...   {nprocs:5d}\n"
        f"Maximum memory per process (MaxCore)        ...   {maxcore:5d} MB\n\n"
    )


def cartesians(atoms: Sequence[Atom]) -> str:
    out = [titled("CARTESIAN COORDINATES (ANGSTROEM)")]
    out += [f"  {a.symbol:<2s} {a.x:12.6f} {a.y:12.6f} {a.z:12.6f}\n" for a in atoms]
    out.append("\n")
    return "".join(out)


def scf_header() -> str:
    return (
        "------------------------------------------------------------------------------\n"
        "                                      ORCA LEAN-SCF\n"
        "                         Memory optimized SCF program\n"
        "------------------------------------------------------------------------------\n\n"
        "----------------------------------------D-I-I-S--------------------------------------------\n"
        "Iteration    Energy (Eh)           Delta-E    RMSDP     MaxDP     DIISErr   Damp  Time(sec)\n"
        "-------------------------------------------------------------------------------------------\n"
        "               ***  Starting incremental Fock matrix formation  ***\n"
    )


def scf_iteration(it: int, energy: float, delta: float, size: float) -> str:
    return (
        f"{it:5d}    {energy:.16f}    {delta:9.2e}  {size:8.2e}  {size * 9.4:8.2e}  "
        f"{size * 1.7:8.2e}  0.000   0.1\n"
    )


def scf_success(cycles: int) -> str:
    return (
        "                 **** Energy Check signals convergence ****\n\n"
        "               *****************************************************\n"
        "               *                     SUCCESS                       *\n"
        f"               *           SCF CONVERGED AFTER {cycles:3d} CYCLES          *\n"
        "               *****************************************************\n\n"
    )


def scf_failure(cycles: int) -> str:
    return (
        "\n               *****************************************************\n"
        "               *                      ERROR                        *\n"
        f"               *           SCF NOT CONVERGED AFTER {cycles:3d} CYCLES      *\n"
        "               *****************************************************\n\n"
    )


def total_scf_energy(energy: float) -> str:
    return (
        "\n" + titled("TOTAL SCF ENERGY") + "\n"
        f"Total Energy       :    {energy:20.14f} Eh          {energy * 27.211386:14.5f} eV\n\n"
    )


def final_energy(energy: float, note: str = "") -> str:
    suffix = f"   ({note})" if note else ""
    return (
        "\n-------------------------   --------------------\n"
        f"FINAL SINGLE POINT ENERGY   {energy:20.12f}{suffix}\n"
        "-------------------------   --------------------\n\n"
    )


def memory_used(module: str, mb: float) -> str:
    return f"\nMaximum memory used throughout the entire {module}-calculation: {mb:.1f} MB\n"


def error_termination(module: str, command: str | None = None) -> str:
    text = f"\nORCA finished by error termination in {module}\n"
    if command:
        text += f"Calling Command: {command}\n"
    return text + "[file orca_tools/qcmsg.cpp, line 394]: \n  .... aborting the run\n\n"


def opt_cycle_box(cycle: int) -> str:
    return (
        "\n         *************************************************************\n"
        f"         *                GEOMETRY OPTIMIZATION CYCLE {cycle:3d}            *\n"
        "         *************************************************************\n"
    )


def geometry_convergence(values: Sequence[tuple[str, float, float]]) -> str:
    out = [
        "\n                                .--------------------.\n",
        "          ----------------------|Geometry convergence|-------------------------\n",
        "          Item                value                   Tolerance       Converged\n",
        "          ---------------------------------------------------------------------\n",
    ]
    for item, value, tol in values:
        verdict = "YES" if abs(value) < tol else "NO"
        out.append(f"          {item:<18s}{value:14.10f}          {tol:14.10f}      {verdict}\n")
    out.append("          ---------------------------------------------------------------------\n\n")
    return "".join(out)


NOT_YET_CONVERGED = "The optimization has not yet converged - more geometry cycles are needed\n\n"

HURRAY = (
    "\n                    ***********************HURRAY********************\n"
    "                    ***        THE OPTIMIZATION HAS CONVERGED     ***\n"
    "                    *************************************************\n\n"
)

MAX_CYCLES = (
    "\nThe optimization did not converge but reached the maximum number of optimization cycles.\n"
    "Please check your results very carefully.\n\n"
)


def final_evaluation_box(cycles: int) -> str:
    return (
        "                 *******************************************************\n"
        "                 *** FINAL ENERGY EVALUATION AT THE STATIONARY POINT ***\n"
        f"                 ***               (AFTER {cycles:4d} CYCLES)               ***\n"
        "                 *******************************************************\n"
    )


OPT_DONE = "\n                                *** OPTIMIZATION RUN DONE ***\n\n"


def frequencies(freqs: Sequence[float]) -> str:
    out = [
        "\n" + titled("VIBRATIONAL FREQUENCIES"),
        "\nScaling factor for frequencies =  1.000000000  (already applied!)\n\n",
    ]
    # As printed by ORCA 5/6: imaginary modes negative and marked.
    out += [
        f"  {i:3d}:   {f:10.2f} cm**-1" + (" ***imaginary mode***\n" if f < 0 else "\n")
        for i, f in enumerate(freqs)
    ]
    return "".join(out) + "\n"


def normal_modes(natoms: int, zero: int) -> str:
    """The NORMAL MODES table (6 columns a group, as ORCA prints it). Translations/rotations are zero;
    vibration k moves atom (k - zero) mod natoms along x, y or z, so each mode is easy to check."""
    n = 3 * natoms
    out = [
        "\n" + titled("NORMAL MODES"),
        "\nThese modes are the Cartesian displacements weighted by the diagonal matrix\n"
        "M(i,i)=1/sqrt(m[i]) where m[i] is the mass of the displaced atom\n"
        "Thus, these vectors are normalized but *not* orthogonal\n\n",
    ]
    for first in range(0, n, 6):
        cols = range(first, min(first + 6, n))
        out.append("        " + "".join(f"{c:11d}" for c in cols) + "    \n")
        for row in range(n):
            values = []
            for c in cols:
                k = c - zero
                hit = k >= 0 and row == 3 * (k % natoms) + (k // natoms) % 3
                values.append(1.0 if hit else 0.0)
            out.append(f"      {row:3d}   " + "".join(f"{v:11.6f}" for v in values) + "\n")
    return "".join(out) + "\n"


def thermochemistry(energy: float, zpe: float, version: str = VERSION) -> str:
    # Line formats from real ORCA 5.0.4 output (ARC's orca_neg_freq_ts.out, GoodVibes' tests/orca5);
    # ORCA 4 called G the "Gibbs free enthalpy" (cclib's basicORCA4.2/dvb_ir.out, ORCA 4.1.1).
    h = energy + zpe + 0.0047
    g = h - 0.0345
    gibbs = "Final Gibbs free enthalpy" if version.startswith("4.") else "Final Gibbs free energy"
    return (
        "\n" + titled("THERMOCHEMISTRY AT 298.15K") + "\n"
        "Temperature         ... 298.15 K\nPressure            ... 1.00 atm\n\n"
        f"Electronic energy                ...   {energy:14.8f} Eh\n"
        f"Zero point energy                ...   {zpe:14.8f} Eh {zpe * 627.509:10.2f} kcal/mol\n\n"
        f"Total Enthalpy                    ...   {h:14.8f} Eh\n\n"
        f"{gibbs}         ...   {g:14.8f} Eh\n\n"
    )


def ccsd_iterations(e0: float, corr: Sequence[float], converged: bool) -> str:
    out = [
        "------------------------------------------------\n",
        "                  RHF COUPLED CLUSTER ITERATIONS\n",
        "------------------------------------------------\n\n",
        "Iter       E(tot)           E(Corr)          Delta-E          Residual     Time\n",
    ]
    previous = 0.0
    for i, c in enumerate(corr):
        residual = abs(c - previous) / 3
        out.append(f"{i:3d}   {e0 + c:14.9f}   {c:14.9f}   {c - previous:14.9f}   {residual:14.9f}    0.00\n")
        previous = c
    if converged:
        out.append("               --- The Coupled-Cluster iterations have converged ---\n\n")
        out.append(titled("COUPLED CLUSTER ENERGY") + "\n")
        out.append(f"E(0)                                       ...  {e0:15.9f}\n")
        out.append(f"E(CORR)                                    ...  {corr[-1]:15.9f}\n")
        out.append(f"E(TOT)                                     ...  {e0 + corr[-1]:15.9f}\n\n")
    else:
        out.append("               --- The CCSD iterations have NOT converged ---\n\n")
    return "".join(out)


WAVEFUNCTION_NOT_CONVERGED = (
    "\n\n     ------------------------------------------------------------------------------\n"
    "                                      ERROR\n"
    "     This wavefunction IS NOT FULLY CONVERGED! \n"
    "     You can't use it for properties or numerical calculations !\n"
    "     Aborting the run ...\n"
    "     Please restart calculation (with larger maxiter/different convergence flags)\n"
    "     ------------------------------------------------------------------------------\n\n"
)


def oom(available: int, needed: int) -> str:
    return (
        "                      INITIAL GUESS DONE (   0.1 sec)\n"
        "                      ------------------\n\n"
        " Error  (ORCA_SCF): Not enough memory available!\n"
        f"                    Memory available for SCF calculation:     {available:8d} MB\n"
        f"                    Memory needed (estimated)           :     {needed:8d} MB\n"
        f"       ====>        Please increase MaxCore to more than:     {needed:8d} MB\n\n\n"
        "[file orca_scf/orca_scf.cpp, line 2720, Process 0]: Error (ORCA_SCF): ... aborting the run\n"
    )


def too_many_processes(nprocs: int, pairs: int, counts: bool = True) -> str:
    """As ORCA 4.2 prints it (ARC's orca_too_many_cores.log); ORCA 4.1 leaves out the counts."""
    what = (
        f"Number of processes ({nprocs}) in parallel calculation exceeds number of pairs ({pairs})"
        if counts
        else "Number of processes in parallel calculation exceeds number of pairs"
    )
    return (
        "Reference energy                           ...    -76.058363907\n"
        f"Error (ORCA_MDCI): {what}\n"
        "[file orca_mdci/mdci_state.cpp, line 1082, Process 0]: . . . aborting the run\n\n"
    )


def mdci_oom(increments: Sequence[float]) -> str:
    """MDCI out of memory, one block per process, as ORCA 4.2 prints it (ARC's orca_mdci_memory_error.log):
    the amount is an increment on top of the current MaxCore."""
    blocks = []
    for rank, more in enumerate(increments):
        blocks.append(
            f"Process {rank:2d}: Error (ORCA_MDCI): not enough memory to treat a single 4ext-batch\n\n"
            f"Process {rank:2d}:{' ' * 20}Please increase MaxCore - by at least ({more:7.1f} MB)\n\n"
            f"[file orca_mdci/mdci_pno_openshell.cpp, line 1861, Process {rank}]:"
            "                    aborting calculation . . .\n\n"
        )
    return "".join(blocks)


# Open MPI's own words (first lines of its help texts, as users post them), written to stderr.
_RULE = "-" * 74 + "\n"


def mpi_stderr(kind: str, executable: str, nprocs: int, node: str) -> str:
    if kind == "slots":
        return (
            f"{_RULE}There are not enough slots available in the system to satisfy the {nprocs}\n"
            f"slots that were requested by the application:\n\n  {executable}\n\n"
            "Either request fewer slots for your application, or make more slots\n"
            f"available for use.\n{_RULE}"
        )
    if kind == "launch":
        return (
            f"{_RULE}mpirun was unable to launch the specified application as it could not access\n"
            f"or execute an executable:\n\nExecutable: {executable}\nNode: {node}\n\n"
            f"while attempting to start process rank 0.\n{_RULE}"
        )
    if kind == "orted":
        return (
            f"bash: orted: command not found\n{_RULE}"
            "ORTE was unable to reliably start one or more daemons.\n"
            f"This usually is caused by:\n{_RULE}"
        )
    # "libs": ORCA built against another Open MPI than the one found at run time.
    return (
        f"{executable}: error while loading shared libraries: libmpi.so.40: cannot open shared "
        "object file: No such file or directory\n"
    )


def property_section(base: str, natoms: int, nbasis: int, maxcore: int) -> str:
    return (
        "\n------------------------------------------------------------------------------\n"
        "                              ORCA PROPERTY CALCULATIONS\n"
        "------------------------------------------------------------------------------\n\n"
        f"GBWName                                 ... {base}.gbw\n"
        f"Number of atoms                         ...   {natoms:4d}\n"
        f"Number of basis functions               ...   {nbasis:4d}\n"
        f"Max core memory                         ...   {maxcore:4d} MB\n\n"
    )


def normal_termination(elapsed: float) -> str:
    ms = round(elapsed * 1000)
    secs, ms = divmod(ms, 1000)
    mins, secs = divmod(secs, 60)
    hours, mins = divmod(mins, 60)
    days, hours = divmod(hours, 24)
    return (
        "                             ****ORCA TERMINATED NORMALLY****\n"
        f"TOTAL RUN TIME: {days} days {hours} hours {mins} minutes {secs} seconds {ms} msec\n"
    )


# NEB runs. The layout (settings, the LBFGS iteration table, the climbing-image switch, the
# "H U R R A Y" box with THE NEB OPTIMIZATION HAS CONVERGED, the TS box of NEB-TS, PATH SUMMARY) follows
# the NEB-TS excerpt in dhsohn/orca_auto's report tests; no real NEB output is stored in this repository.
def neb_settings(kind: str, images: int) -> str:
    method = "climbing image" if kind != "neb" else "regular"
    return (
        "----------------------\n"
        "NEB settings\n"
        "----------------------\n"
        f"Method type                             ....  {method}\n"
        "Tangent type                            ....  improved\n"
        f"Number of intermediate images           ....  {images}\n"
        "Generation of initial path              ....  image dependent pair potential\n\n"
        "Optimization method:\n"
        "Method                                  ....  L-BFGS\n"
        "Max. iterations                         ....  500\n\n"
        "Starting iterations:\n"
        "Optim.  Iteration  HEI  E(HEI)-E(0)  max(|Fp|)   RMS(Fp)    dS\n"
        "Switch-on CI threshold               0.020000\n"
    )


def neb_iteration(iteration: int, image: int, barrier: float, fmax: float, frms: float, ds: float) -> str:
    return f"   LBFGS {iteration:5d}  {image:5d}    {barrier:8.6f}    {fmax:8.6f}   {frms:8.6f}  {ds:7.4f}\n"


def neb_climbing_switch(image: int) -> str:
    return (
        f"Image {image:2d} will be converted to a climbing image in the next iteration (max(|Fp|) < 0.0200)\n"
        "Optim.  Iteration  CI   E(CI)-E(0)   max(|Fp|)   RMS(Fp)    dS     max(|FCI|)   RMS(FCI)\n"
        "Convergence thresholds               0.020000   0.010000            0.002000    0.001000\n"
    )


NEB_CONVERGED = (
    "\n                    *********************H U R R A Y*********************\n"
    "                    ***        THE NEB OPTIMIZATION HAS CONVERGED     ***\n"
    "                    *****************************************************\n\n"
)
NEB_TS_CONVERGED = (
    "                    ***********************HURRAY************************\n"
    "                    ***        THE TS OPTIMIZATION HAS CONVERGED      ***\n"
    "                    *****************************************************\n"
)
# The emulator's own words: no real output of an NEB that ran out of iterations was at hand to copy.
NEB_NOT_CONVERGED = "\nThe NEB optimization did not converge within the maximum number of iterations.\n\n"


def neb_path_summary(kind: str, energies: Sequence[float], climbing: int) -> str:
    lines = [
        "---------------------------------------------------------------",
        f"                      PATH SUMMARY FOR {kind.upper()}",
        "---------------------------------------------------------------",
        "All forces in Eh/Bohr.",
        "Image     E(Eh)   dE(kcal/mol)  max(|Fp|)  RMS(Fp)",
    ]
    for i, e in enumerate(energies):
        mark = " <= CI" if i == climbing and kind != "neb" else ""
        lines.append(f"{i:3d}  {e:12.5f}  {(e - energies[0]) * 627.509:7.2f}       0.00150   0.00060{mark}")
    return "\n".join(lines) + "\n\n"
