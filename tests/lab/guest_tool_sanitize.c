/* Linked into every tool tests/lib/harness.sh's isd_lab_build makes for the lab guest. The tools
 * run with ASan and UBSan so that a crash in them, or in a library beneath them (libiscsi's iSER
 * transport above all), leaves a stack in the job log. Leak checking stays off: the tools exit
 * with connections and contexts open on purpose (a writer killed mid-I/O, an initiator that stops
 * posting receives), and their exit status is what the jobs read. */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);

const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}

const char *
__ubsan_default_options(void)
{
	return "print_stacktrace=1";
}
