"""The playground: a web page for trying the API in a browser, served by engine and router."""
