package gcs

// ADC is adc, for the test of GOOGLE_APPLICATION_CREDENTIALS.
var ADC = adc
