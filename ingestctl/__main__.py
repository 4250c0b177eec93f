from ingestctl.cli import main

main()
