from vsslrt.cli.app import main

main()
