from tokenshare.cli.main import main

main()
